"""The plan during `sensing workshop run`: which board sets up which planned device, and the one writer of
plan.json while many boards are set up at once.

Every change (a step done, a registration) is made under one lock and saved whole before the board that made
it goes on, so the plan on disk is always as it was after a finished step: a run stopped at any moment (Ctrl-C,
a crash, the laptop's battery) continues where it stopped, and a registered device is never registered again.
"""

import threading
from pathlib import Path

from cli.firmware_images import ESP_CHIPS
from cli.roster import BOARDS, STATES, Plan, PlanError, PlannedDevice


def who(device: PlannedDevice, start: bool = False) -> str:
    """How the log and the messages name a planned device: "row 3 (Jo)"; "Row 3 (Jo)" to start a sentence."""
    return f"{'Row' if start else 'row'} {device.row} ({device.name})"


class PlanKeeper:
    def __init__(self, folder: Path):
        self.folder = folder
        self.plan = Plan.load(folder)
        self.lock = threading.Lock()
        self.busy: set[int] = set()  # the rows being set up at a port now

    def remaining(self) -> list[PlannedDevice]:
        with self.lock:
            return [device for device in self.plan.devices if device.state != "provisioned"]

    def row(self, row: int) -> PlannedDevice | None:
        return next((device for device in self.plan.devices if device.row == row), None)

    def esp_wanted(self, row: int | None, chips: dict[str, str]) -> bool:
        """Whether a board that does not answer like a MicroPython board may be an ESP32 this run sets up: the row
        the facilitator chose for its port is one; else (none chosen) a row still to set up is. Only then is it
        asked through esptool which chip it is (`chips`: board -> chip, the manifest's)."""
        with self.lock:
            if row is not None:
                device = self.row(row)
                return device is not None and chips.get(device.board) in ESP_CHIPS
            return any(chips.get(d.board) in ESP_CHIPS for d in self._waiting())

    def take(self, row: int | None, device_id: str | None, board: str | None, esp_only: bool = False,
             not_answering: str | None = None, chip: str | None = None,
             chips: dict[str, str] | None = None) -> PlannedDevice:  # fmt: skip
        """The planned device for a board just plugged in, held for it until `release`:

        the row the facilitator chose for its port (if its chip is the row's board's); else the device its
        /config.json names (a board set up before, plugged in again); else the first device not yet provisioned
        planned for its type of board, or, for a board without MicroPython (`esp_only`), for its `chip` (an
        ESP32's, asked of its loader: it is flashed first). PlanError says why there is none.
        """
        chips = chips or {}
        with self.lock:
            by_id = next((d for d in self.plan.devices if device_id and d.device_id == device_id), None)
            if row is not None:
                device = self.row(row)
                if device is None:
                    raise PlanError(f"There is no row {row} in the plan: see the rows in {self.folder}/plan.json.")
                _check_chosen(device, chip or chips.get(board or ""), chips)
            elif by_id is not None:
                device = by_id
            else:
                device = self._next(board, esp_only, not_answering, chip, chips)
            if device.row in self.busy:
                raise PlanError(f"{who(device, start=True)} is being set up at another port already: "
                                "unplug this board until that one is done.")  # fmt: skip
            self.busy.add(device.row)
            return device

    def _waiting(self) -> list[PlannedDevice]:
        return [d for d in self.plan.devices if d.state != "provisioned" and d.row not in self.busy]

    def _next(self, board: str | None, esp_only: bool, not_answering: str | None, chip: str | None,
              chips: dict[str, str]) -> PlannedDevice:  # fmt: skip
        waiting = self._waiting()
        if esp_only and chip is None:
            raise PlanError(not_answering or "The board does not answer.")
        if esp_only:
            fit = [d for d in waiting if chips.get(d.board) == chip]
            if not fit:
                raise PlanError(self._no_row_for(chip, chips))
        else:
            fit = [d for d in waiting if board is None or d.board == board]
        if not fit:
            if any(d.board == board for d in self.plan.devices):
                raise PlanError(f"Every {board} in the plan is provisioned or being set up: "
                                "this board is one too many.")  # fmt: skip
            raise PlanError(f"The plan has no {board} board: plug in the board a resident's row names.")
        return fit[0]

    def _no_row_for(self, chip: str, chips: dict[str, str]) -> str:
        """Why no row takes a board without MicroPython whose chip is `chip`, and what to do."""
        if any(chips.get(d.board) == chip for d in self.plan.devices):
            return f"Every {chip} board in the plan is provisioned or being set up: this board is one too many."
        boards = [name for name in BOARDS if chips.get(name) == chip]
        if not boards:
            return f"This board is an {chip}, which a workshop does not set up: unplug it."
        return (f"This board is an {chip} without MicroPython, and no row of the plan is for one: add a row for "
                f"an {' or '.join(boards)} board to the roster and run sensing workshop prepare again, "
                "or unplug it.")  # fmt: skip

    def release(self, device: PlannedDevice) -> None:
        with self.lock:
            self.busy.discard(device.row)

    def advance(self, device: PlannedDevice, state: str) -> None:
        """Record the step done (and save), unless the device got that far before: a run continued."""
        with self.lock:
            if STATES.index(state) > STATES.index(device.state):
                device.advance(state)
                self.plan.save(self.folder)

    def registered(self, device: PlannedDevice, hub: str, registration: dict) -> None:
        """Keep the hub's answer (id, secret, owner token) on disk before the board is given any of it."""
        with self.lock:
            device.record_registration(hub, registration)
            self.plan.save(self.folder)


def _check_chosen(device: PlannedDevice, chip: str | None, chips: dict[str, str]) -> None:
    """The row chosen for a port must be for the chip of the board there, when that is known."""
    wanted = chips.get(device.board)
    if chip is not None and wanted is not None and chip != wanted:
        raise PlanError(f"This board is an {chip}, but {who(device)} is for an {device.board} ({wanted}): "
                        f"choose the row of an {chip} board for its port (--port PORT=ROW), or unplug it.")  # fmt: skip
