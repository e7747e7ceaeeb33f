"""A workshop's roster (one row per resident's device) and the plan made from it.

The roster is a CSV a facilitator fills in a spreadsheet (workshops/roster-template.csv). Checking it gives one
human sentence per problem, with the row number the spreadsheet shows (the header is row 1).

The plan (`plan.json` in the plan folder) has one planned device per roster row, and records how far each one has
got: planned → flashed → deployed → provisioned, and the device id, secret and owner token from the moment the
hub registered it. `sensing workshop run` reads it before each step, so an interrupted workshop continues, and a
device with an id is never registered again. The plan holds secrets: it is written readable by its owner only.
"""

import csv
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hub.consent import PURPOSES
from hub.timeutil import utcnow

# Every board the firmware has a pin map for (firmware/boards/), ESP32 family first.
BOARDS = ("ESP32_GENERIC", "ESP32_GENERIC_S3", "ESP32_GENERIC_C3", "RPI_PICO_W", "RPI_PICO2_W")
KINDS = ("air", "damp")
PLACEMENTS = ("indoor", "outdoor")
SHARING = ("private", "community", "open")
COLUMNS = ("name", "contact", "area", "placement", "kind", "board", "sharing", "purposes")
REQUIRED = ("name", "area", "placement", "kind", "board")  # contact, sharing and purposes may be empty
STATES = ("planned", "flashed", "deployed", "provisioned")
PLAN_FILE = "plan.json"
EMPTY = {
    "name": "write the resident's name or a nickname",
    "area": "write the area the device will be in, e.g. easton",
    "placement": "write indoor or outdoor",
    "kind": "write air or damp",
    "board": "write the board type, e.g. ESP32_GENERIC",
}


class RosterError(ValueError):
    """The roster cannot be planned; `problems` has one sentence for each thing to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class PlanError(ValueError):
    """A step the plan refuses, such as registering a device twice."""


@dataclass
class PlannedDevice:
    row: int  # the roster row, as the spreadsheet numbers it
    name: str
    area: str
    placement: str
    kind: str
    board: str
    contact: str = ""
    sharing: str | None = None  # None: to be asked at the workshop
    purposes: list[str] = field(default_factory=list)  # empty: to be asked at the workshop
    state: str = "planned"
    device_id: str | None = None
    device_secret: str | None = None
    owner_token: str | None = None
    hub: str | None = None
    agreement: dict[str, Any] | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    # The Idempotency-Key its registration is sent with, saved before it is first sent: a registration the hub
    # made just before a crash, whose answer the plan never got, is found again with it, not made twice.
    registration_key: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Who and what the device is: how a re-planned roster row finds its device again."""
        return (self.name.casefold(), self.area.casefold(), self.placement, self.kind)

    def advance(self, state: str) -> None:
        """Move forward to `state` (a step may be skipped, e.g. a board that already runs MicroPython)."""
        if STATES.index(state) <= STATES.index(self.state):
            raise PlanError(f"row {self.row} ({self.name}) is already {self.state}: it cannot become {state}")
        if state == "provisioned" and self.device_id is None:
            raise PlanError(f"row {self.row} ({self.name}) cannot be provisioned before it is registered")
        self.state = state
        self.history.append({"state": state, "at": utcnow().isoformat()})

    def new_registration_key(self) -> bool:
        """Give the device the key its registration is to be sent with, if it has none; whether it is new."""
        if self.registration_key is not None:
            return False
        self.registration_key = str(uuid.uuid4())
        return True

    def record_registration(self, hub: str, registration: dict[str, Any]) -> None:
        """Keep what the hub answered to a registration: the one chance to see the secret and owner token."""
        if self.device_id is not None:
            raise PlanError(f"row {self.row} ({self.name}) is already registered as {self.device_id}: never twice")
        self.device_id = registration["device"]["public_id"]
        self.device_secret = registration["device_secret"]
        self.owner_token = registration["owner_token"]
        self.agreement = registration["agreement"]
        self.hub = hub.rstrip("/")
        self.history.append({"state": "registered", "at": utcnow().isoformat()})


@dataclass
class Plan:
    roster: str
    roster_sha256: str
    devices: list[PlannedDevice]
    format: int = 1

    def save(self, folder: Path) -> Path:
        """Write the plan whole or not at all, readable by its owner only (it holds secrets)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PLAN_FILE
        temporary = path.with_name(PLAN_FILE + ".new")
        data = asdict(self)
        for device in data["devices"]:
            if device["registration_key"] is None:  # written from when it is made, just before it is first sent
                del device["registration_key"]
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, folder: Path) -> "Plan":
        data = json.loads((folder / PLAN_FILE).read_text(encoding="utf-8"))
        return cls(**data | {"devices": [PlannedDevice(**device) for device in data["devices"]]})


def one_of(row: int, what: str, value: str, choices: tuple[str, ...]) -> str | None:
    if value in choices:
        return None
    return f"row {row}: {what} '{value}' is not {', '.join(choices[:-1])} or {choices[-1]}"


def check_row(row: int, cells: dict[str, str]) -> list[str]:
    """Every problem with one roster row, one sentence each."""
    problems = [f"row {row}: the {column} is empty: {EMPTY[column]}" for column in REQUIRED if not cells[column]]
    if cells["placement"] and (problem := one_of(row, "placement", cells["placement"], PLACEMENTS)):
        problems.append(problem)
    if cells["kind"] and (problem := one_of(row, "kind", cells["kind"], KINDS)):
        problems.append(problem)
    if cells["board"] and cells["board"] not in BOARDS:
        problems.append(f"row {row}: board '{cells['board']}' is not supported: use "
                        f"{', '.join(BOARDS[:-1])} or {BOARDS[-1]}")  # fmt: skip
    if cells["sharing"] and (problem := one_of(row, "sharing", cells["sharing"], SHARING)):
        problems.append(problem + " (or empty, to ask at the workshop)")
    for purpose in purposes(cells["purposes"]):
        if purpose not in PURPOSES:
            problems.append(f"row {row}: purpose '{purpose}' is not one of {', '.join(PURPOSES)}")
    return problems


def purposes(cell: str) -> list[str]:
    return [part.strip() for part in cell.replace(",", ";").split(";") if part.strip()]


def cleaned(raw: dict[str, str]) -> dict[str, str]:
    cells = {column: (raw.get(column) or "").strip() for column in COLUMNS}
    for column in ("placement", "kind", "sharing"):
        cells[column] = cells[column].lower()
    cells["board"] = cells["board"].upper()
    return cells


def read_roster(text: str) -> list[PlannedDevice]:
    """Planned devices from roster CSV text (comma or semicolon separated); RosterError lists every problem."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RosterError(["the roster is empty: start from workshops/roster-template.csv"])
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    records = csv.reader(lines, delimiter=delimiter)
    header = [name.strip().lower() for name in next(records)]
    problems = [f"the roster has no '{column}' column" for column in REQUIRED if column not in header]
    problems += [f"the roster has a column '{name}' this tool does not know: the columns are {', '.join(COLUMNS)}"
                 for name in header if name not in COLUMNS]  # fmt: skip
    if problems:
        raise RosterError(problems)
    planned = []
    # Every record counts, blank ones too, so the numbers are the spreadsheet's rows.
    for row, record in enumerate(records, start=2):
        cells = cleaned(dict(zip(header, record, strict=False)))
        if not any(cells.values()):
            continue
        problems += check_row(row, cells)
        planned.append(PlannedDevice(
            row=row, name=cells["name"], area=cells["area"], placement=cells["placement"], kind=cells["kind"],
            board=cells["board"], contact=cells["contact"], sharing=cells["sharing"] or None,
            purposes=purposes(cells["purposes"]),
        ))  # fmt: skip
    if problems:
        raise RosterError(problems)
    if not planned:
        raise RosterError(["the roster has no residents: add one row per device under the header"])
    return planned


def merge(old: Plan, new: list[PlannedDevice]) -> tuple[list[PlannedDevice], list[PlannedDevice]]:
    """The re-planned devices, keeping every device that got further than planned; and those the roster lost.

    A device that was flashed or registered keeps its record (it is never registered again); a device still only
    planned takes the roster's new details.
    """
    started: dict[tuple, list[PlannedDevice]] = {}
    for device in old.devices:
        if device.state != "planned" or device.device_id is not None:
            started.setdefault(device.key, []).append(device)
    devices = []
    for device in new:
        match = started.get(device.key)
        if match:
            kept = match.pop(0)
            kept.row = device.row
            devices.append(kept)
        else:
            devices.append(device)
    return devices, [device for remaining in started.values() for device in remaining]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
