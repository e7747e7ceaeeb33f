"""One board at a workshop, from plugged in to its first reading at the hub: `set_up(board, workshop)`.

The steps are those of `sensing device flash`, `deploy` and `provision`, told as log lines and a state for the
live table instead of printed results; a failure is one sentence in `board.failure`, and the other boards go on.
Every change to the plan goes through the PlanKeeper (cli/workshop_plan.py), which saves it whole at once, so an
interruption anywhere leaves the plan as it was after the last finished step.
"""

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cli import uf2
from cli.board import BoardError, connected
from cli.consent_questions import AnswerError, Answers
from cli.device_deploy import BoardFile, CompileError, Library, deploy_to_board, why_source
from cli.firmware_images import PICO_CHIPS, FirmwareError, Image, Manifest, cached, esp_chip_of_image, version_key
from cli.flash import (
    FlashError,
    NotInLoader,
    Progress,
    check_board,
    copy_uf2,
    esp_chip_at,
    find_drive,
    flash_esp,
    read_uf2,
)
from cli.hubclient import call
from cli.monitor import Lines, reading_text, soft_reboot
from cli.provision import (
    BOARD_CA,
    board_config,
    board_name,
    firmware_config,
    first_reading_finder,
    look_at,
    wait_for_first_reading,
)
from cli.roster import PlanError, PlannedDevice
from cli.workshop_plan import PlanKeeper, who

FAST_BAUD = 460800
BACK_AFTER_FLASH = 30  # seconds for a flashed board to answer with the new MicroPython (a Pico at a serial port)
ESP_BOOT = 1  # seconds from an ESP32's reset to MicroPython's REPL, about: it is looked at after that


class StepFailure(Exception):
    """A step of one board failed; the message is one sentence for the facilitator."""


class Stopped(Exception):
    """The facilitator pressed Ctrl-C: the board stops at its next step."""


@dataclass
class BoardRun:
    """One board plugged in, as the live table shows it."""

    port: str
    plugged_at: float = field(default_factory=time.monotonic)
    device: PlannedDevice | None = None
    step: str = "waiting"
    result: str = ""
    failure: str | None = None
    finished: bool = False
    first_reading_at: float | None = None
    started: dict[str, float] = field(default_factory=dict)  # step -> when it started (time.monotonic)
    away: bool = False  # a Pico in BOOTSEL: its port gone, the next board there is looked at anew
    handed_over: bool = False  # a flashed Pico back at a port: its own run went on there, this one is not shown

    def enter(self, step: str, result: str = "") -> None:
        self.step, self.result = step, result
        self.started.setdefault(step, time.monotonic())

    def fail(self, sentence: str) -> None:
        self.enter("failed", "✗ see below")
        self.failure = sentence


@dataclass
class Workshop:
    """What every board of a workshop run shares."""

    hub: str
    key: str
    info: dict  # GET /api/v1/hub: broker, consent version
    purposes: dict[str, str]
    keeper: PlanKeeper
    manifest: Manifest
    files: list[BoardFile]
    libraries: list[Library]
    say: Callable[[BoardRun, str], None]  # one line of the log, about one board
    broker_ca: bytes | None = None  # the CA certificate (DER) of the hub's TLS broker, for every board
    answers_dir: Path | None = None
    collected_by: str | None = None
    ask: Callable[[PlannedDevice, dict, list[str]], dict] | None = None  # None: never ask the facilitator
    assigned: dict[str, int] = field(default_factory=dict)  # port -> the roster row the facilitator chose
    micropython: str | None = None  # None: the manifest's newest for the board
    interval: int = 60
    wait: float = 120
    stopping: threading.Event = field(default_factory=threading.Event)
    bootsel: threading.Lock = field(default_factory=threading.Lock)  # one Pico in BOOTSEL at a time
    returning: dict[str, queue.Queue] = field(default_factory=dict)  # flashed Picos, by unique id: see welcome_back
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> None:
        if self.stopping.is_set():
            raise Stopped()

    def expect_back(self, board: BoardRun, unique_id: str | None) -> tuple[str, queue.Queue]:
        """Where the run of a Pico sent to BOOTSEL hears of it at a serial port again (see welcome_back)."""
        key = unique_id or f"port {board.port}"  # a board that tells no unique id is known at its own port only
        with self.lock:
            back = self.returning[key] = queue.Queue()
        return key, back

    def awaiting(self) -> bool:
        """Whether a Pico sent to BOOTSEL by this run is yet to be heard of at a serial port."""
        with self.lock:
            return bool(self.returning)

    def welcome_back(self, board: BoardRun, state: dict) -> bool:
        """Whether the board just noticed is a Pico flashed by this run, back from BOOTSEL: at its old port, or
        at another (Linux numbers ports in the order boards appear). It is known by its machine.unique_id();
        its own run takes the port and goes on, and this one ends, not shown."""
        with self.lock:
            back = self.returning.pop(state.get("id") or "", None) or self.returning.pop(f"port {board.port}", None)
        if back is None:
            return False
        board.handed_over = True
        back.put((board.port, state))
        return True


def failure(sentence: str) -> NoReturn:
    raise StepFailure(sentence)


def hub_request(hub: str, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
    """hubclient.call, raising the sentence instead of ending the command: the other boards go on."""
    return call(hub, method, path, key, fail=failure, **kwargs)


Looked = tuple[dict | None, str | None]  # what `look` found: the board's state, or why it does not answer


def set_up(board: BoardRun, workshop: Workshop, looked: Looked | None = None) -> None:
    """Flash, deploy and provision the board, whatever happens telling it in `board`, never raising. `looked`:
    what `first_look` found at its port, not looked at again."""
    try:
        _set_up(board, workshop, looked)
    except (StepFailure, BoardError, FlashError, FirmwareError, PlanError, CompileError) as e:
        board.fail(str(e))
    except Stopped:
        board.enter("stopped", "– stopped")
    except Exception as e:  # noqa: BLE001 - one board's surprise must not stop the others
        board.fail(f"Something unexpected went wrong with the board at {board.port} ({type(e).__name__}: {e}): "
                   "unplug it, plug it in again, and try again.")  # fmt: skip
    finally:
        if board.device is not None:
            workshop.keeper.release(board.device)
        board.finished = True


def first_look(board: BoardRun, workshop: Workshop) -> Looked | None:
    """What is at a port that appeared while a flashed Pico is awaited: None when it is that Pico (its own run
    goes on with it, and this one is finished), else what the look found, for `set_up`. It runs in a thread of
    its own, not waiting for one of the --parallel boards' places: the Pico's run holds one of those until it
    hears of its board, and with every place so held nothing else would look."""
    board.enter("looking")
    looked = look(board.port)
    state = looked[0]
    if state is not None and workshop.welcome_back(board, state):
        board.finished = True
        return None
    return looked


def _set_up(board: BoardRun, workshop: Workshop, looked: Looked | None) -> None:
    keeper = workshop.keeper
    board.enter("looking")
    state, not_answering = looked or look(board.port)
    if looked is None and state is not None and workshop.welcome_back(board, state):
        return
    config = state["config"] if state and isinstance(state["config"], dict) else {}
    row = workshop.assigned.get(board.port)
    chips = {name: known["chip"] for name, known in workshop.manifest.boards.items()}
    # A board without MicroPython tells nothing of itself at the REPL: if it may be an ESP32 the plan wants, its
    # ROM loader tells its chip, so it gets a row for that chip (a blank ESP32-S3 would not take an ESP32's).
    chip = which_esp(board.port) if state is None and keeper.esp_wanted(row, chips) else None
    device = board.device = keeper.take(
        row=row,
        device_id=config.get("device_id"),
        board=board_name(state["machine"]) if state else None,
        esp_only=state is None,
        not_answering=not_answering,
        chip=chip,
        chips=chips,
    )
    if device.state == "provisioned":
        board.enter("provisioned", f"✓ already, as {device.device_id}")
        workshop.say(board, f"already provisioned as {device.device_id}: nothing to do")
        return
    if device.hub is not None and device.hub != workshop.hub.rstrip("/"):
        failure(f"{who(device)} is registered with another hub ({device.hub}): run the workshop against that hub.")
    workshop.check()
    state = flash_if_needed(board, workshop, state, not_answering)
    keeper.advance(device, "flashed")
    workshop.check()
    deploy(board, workshop)
    keeper.advance(device, "deployed")
    workshop.check()
    answers = workshop_answers(workshop, device, must=device.device_id is None)
    if device.device_id is None:
        board.enter("registering")
        body = answers.registration(device.board, workshop.info["consent_version"])
        registration = hub_request(workshop.hub, "POST", "/api/v1/devices", key=workshop.key, json=body,
                                   headers={"Idempotency-Key": registration_key(keeper, device)})  # fmt: skip
        keeper.registered(device, workshop.hub, registration)  # saved before the board hears of it
        workshop.say(board, f"registered {device.device_id}: sharing {answers.sharing}, in {answers.area}")
    else:
        workshop.say(board, f"already registered as {device.device_id}: kept, with its stored secret")
    workshop.check()
    provision(board, workshop, state, answers)
    keeper.advance(device, "provisioned")


def registration_key(keeper: PlanKeeper, device: PlannedDevice) -> str:
    """The key the device's registration is sent with, in the plan on disk before the hub first hears it: a run
    that crashed between the hub's answer and the plan's save sends it again, and the hub answers with the same
    device (and a new secret, the first one never having reached anyone) instead of registering a second."""
    with keeper.lock:
        if device.new_registration_key():
            keeper.plan.save(keeper.folder)
        return device.registration_key


def which_esp(port: str) -> str:
    """The chip of the board at `port`, which does not answer like a MicroPython board, asked of its ROM loader
    through esptool (reset into it and out again: the board runs what it ran before)."""
    try:
        return esp_chip_at(port)
    except NotInLoader:
        failure(f"The device at {port} answers neither like a MicroPython board nor like an ESP32 in its "
                "bootloader: if it is an ESP32, hold its BOOT button, press and release RESET, let go of BOOT, "
                "and try again.")  # fmt: skip


def look(port: str) -> tuple[dict | None, str | None]:
    """What the board is (provision.look_at), or None and the sentence saying why it does not answer."""
    try:
        with connected(port) as found:
            return look_at(found), None
    except BoardError as e:
        return None, str(e)


def flash_if_needed(board: BoardRun, workshop: Workshop, state: dict | None, not_answering: str | None) -> dict:
    """The board's state once it runs MicroPython of the wanted version or newer: flashed only if it does not."""
    device = board.device
    image = workshop.manifest.image(device.board, workshop.micropython)
    if state is not None and version_key(state["version"]) >= version_key(image.version):
        workshop.say(board, f"MicroPython {state['version']} already on it: not flashed")
        return state
    board.enter("flashing")
    data = cached(image).read_bytes()

    def report(what: str, total: int | None, done: int) -> None:
        board.result = f"{what} {done * 100 // total} %" if total else what

    chip = workshop.manifest.chip(device.board)
    left = board.port
    if chip in PICO_CHIPS:
        if state is None:  # a Pico without MicroPython has no serial port: it would be a BOOTSEL drive
            failure(not_answering)
        state = flash_pico(board, workshop, state, data, image, chip, report)
    else:
        image_chip = esp_chip_of_image(data)
        if image_chip is not None and image_chip != chip:  # refused before the board is reset into its loader
            failure(f"{image.file} is made for the {image_chip}, but this board is an {chip} ({device.board}): "
                    "use the firmware made for your board.")  # fmt: skip
        done = flash_esp(board.port, data, image.file, (device.board, chip), FAST_BAUD, True, True, report,
                         options=False)  # fmt: skip
        if not done.restarted:  # its port cannot reset it (no DTR/RTS): it waits in its loader
            failure(f"{image.file} was written to the board at {board.port}, but its port could not restart it: "
                    "press its reset button, and run this again.")  # fmt: skip
        board.result = "restarting"
        state = started_after_flash(board, workshop, image)
    if version_key(state["version"]) < version_key(image.version):
        failure(f"The board at {board.port} still runs MicroPython {state['version']} after {image.file} was "
                "written to it: unplug it, plug it in again, and try again.")  # fmt: skip
    moved = f" (it was at {left})" if board.port != left else ""  # back at another port: named after it now
    workshop.say(board, f"MicroPython {image.version} written{moved}")
    return state


def started_after_flash(board: BoardRun, workshop: Workshop, image: Image) -> dict:
    """The state of an ESP32 reset by esptool after flashing, once MicroPython answers. Until it has started
    (about a second, longer while it makes its filesystem on the erased flash) nothing reads what the port
    sends, and a look then finds no REPL: it is looked at again, up to BACK_AFTER_FLASH."""
    deadline = time.monotonic() + BACK_AFTER_FLASH
    workshop.stopping.wait(ESP_BOOT)
    while True:
        workshop.check()
        state, _ = look(board.port)
        if state is not None:
            return state
        if time.monotonic() > deadline:
            failure(f"The board at {board.port} did not start MicroPython within {BACK_AFTER_FLASH} s of "
                    f"{image.file} being written to it: press its reset button, and run this again.")  # fmt: skip


def flash_pico(board: BoardRun, workshop: Workshop, state: dict, data: bytes, image: Image, chip: str,
               report: Progress) -> dict:  # fmt: skip
    """Send the Pico to BOOTSEL and copy the UF2 onto its drive; its state once it is back at a serial port.

    The file is checked against the board's chip while the board is still at its port: a file its bootrom would
    ignore is refused before the board is sent away, not left on a drive with the board stuck in BOOTSEL."""
    device = board.device
    checked = read_uf2(data, image.file)
    try:
        uf2.check_family(checked, chip, image.file)
    except uf2.UF2Error as e:
        failure(str(e))
    key, back = workshop.expect_back(board, state.get("id"))
    try:
        with workshop.bootsel:  # Picos in BOOTSEL are told apart only by their drive: one at a time
            drive = find_drive(None, board.port, report, options=False)
            board.away = True  # its port went before its drive came: the next board at that port is looked at
            check_board(checked, image.file, drive, (device.board, chip), options=False)
            copy_uf2(data, image.file, drive, report)
        board.result = "restarting"
        return back_at_port(board, workshop, back)
    finally:
        with workshop.lock:
            workshop.returning.pop(key, None)


def back_at_port(board: BoardRun, workshop: Workshop, back: queue.Queue) -> dict:
    """The flashed board's state once the run has noticed it at a serial port again (Workshop.welcome_back)."""
    deadline = time.monotonic() + BACK_AFTER_FLASH
    while time.monotonic() < deadline:
        workshop.check()
        try:
            port, state = back.get(timeout=0.2)
        except queue.Empty:
            continue
        board.port, board.away = port, False
        return state
    failure(f"The board flashed at {board.port} did not come back at a serial port within {BACK_AFTER_FLASH} s: "
            "unplug it and plug it in again.")  # fmt: skip


def deploy(board: BoardRun, workshop: Workshop) -> None:
    """The firmware as `sensing device deploy` puts it on a board: compiled to .mpy where the board loads it."""
    board.enter("deploying")

    def report(what: str, total: int, done: int) -> None:
        board.result = f"{done * 100 // max(total, 1)} %"

    done = deploy_to_board(board.port, workshop.files, workshop.libraries, report)
    board.result = ""
    if not done.compiled:
        workshop.say(board, f"the board {why_source(done.mpy)}: it gets the .py files, and needs more memory to "
                            "run them")  # fmt: skip
    said = f"deployed {done.copied} of {done.total} files"
    if done.copied == 0:
        said = f"firmware already there ({done.total} files)"
    if done.removed:
        said += f", removed {done.removed} {'.py' if done.compiled else '.mpy'} files of an earlier deploy"
    workshop.say(board, said)


ASKED = ("sharing", "purposes", "collected_by")  # what the roster may leave to the day


def workshop_answers(workshop: Workshop, device: PlannedDevice, must: bool) -> Answers | None:
    """The resident's answers: the roster's, then answers_dir/all.yaml, then answers_dir/<row>.yaml, then what
    the facilitator is asked for. None when something is missing and `must` is false (kept: no new answers)."""
    given: dict[str, Any] = {"area": device.area, "placement": device.placement, "kind": device.kind}
    if device.sharing:
        given["sharing"] = device.sharing
    if device.purposes:
        given["purposes"] = list(device.purposes)
    if workshop.collected_by:
        given["collected_by"] = workshop.collected_by
    if workshop.answers_dir is not None:
        for name in ("all", str(device.row)):
            given |= answers_file(workshop.answers_dir, name)
    missing = [name for name in ASKED if not given.get(name)]
    if missing:
        if not must:
            return None
        if workshop.ask is None:
            failure(f"The answers for {who(device)} do not say {missing[0]}: add it to "
                    f"{workshop.answers_dir}/{device.row}.yaml, then run this again.")  # fmt: skip
        given = workshop.ask(device, given, missing)
    try:
        return Answers(**given).check(workshop.purposes)
    except AnswerError as e:
        failure(f"{who(device)}: {e}")


def answers_file(folder: Path, name: str) -> dict:
    """folder/name.yaml (or .yml, .json) as a dict of answers; {} when there is none."""
    import yaml

    path = next((folder / (name + ext) for ext in (".yaml", ".yml", ".json") if (folder / (name + ext)).exists()),
                None)  # fmt: skip
    if path is None:
        return {}
    try:
        given = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        failure(f"Cannot read the answers file {path} ({e.strerror}).")
    except yaml.YAMLError:
        failure(f"The answers file {path} is not valid YAML or JSON.")
    if given is None:
        return {}
    if not isinstance(given, dict):
        failure(f"The answers file {path} should hold names and answers, like sharing: open.")
    unknown = sorted(set(given) - set(Answers.__dataclass_fields__))
    if unknown:
        failure(f"The answers file {path} has an unknown answer '{unknown[0]}'.")
    return {name: "" if value is None and name.startswith("wifi") else value for name, value in given.items()}


def provision(board: BoardRun, workshop: Workshop, state: dict, answers: Answers | None) -> None:
    """Write /config.json, restart the board, and wait for its first reading at the hub."""
    device = board.device
    board.enter("configuring")
    kept = state["config"] if isinstance(state["config"], dict) else None
    if kept is not None and kept.get("device_id") != device.device_id:
        kept = None  # another device's settings (a board used before): nothing of them is kept
    config = board_config(kept, device.device_id, device.device_secret, workshop.info, answers, device.board,
                          workshop.interval)  # fmt: skip
    refused = firmware_config(config)
    if refused:
        failure(f"The board's config would be refused: {refused}.")

    def find() -> dict | None:
        workshop.check()
        return seen()

    seen = first_reading_finder(workshop.hub, device.device_id, device.owner_token, False, request=hub_request)
    with connected(board.port) as found:
        if workshop.broker_ca is not None:
            found.write_file(BOARD_CA, workshop.broker_ca)
        found.write_file("/config.json", json.dumps(config, indent=1).encode())
        found.transport.exit_raw_repl()
        lines = Lines(found.transport.serial)
        lines.port.timeout = 0.1
        if not soft_reboot(lines.port, lines):
            failure(f"The board at {board.port} did not restart: press its reset button, then run this again.")
        board.enter("first reading")
        values = wait_for_first_reading(lines, find, config.get("wifi_ssid", ""), workshop.wait, fail=failure)
    board.enter("provisioned", f"✓ {reading_text(values)}")
    board.first_reading_at = board.started["provisioned"]
    workshop.say(board, f"first reading at the hub: {reading_text(values)}")
