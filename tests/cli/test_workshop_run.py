"""`sensing workshop run` against real components: a hub process with its embedded broker, and simulated boards
(the MicroPython unix port behind mpremote) that start empty: the run flashes those with an older MicroPython
from the firmware cache (a Pico through its BOOTSEL drive; an ESP32 DevKit, blank or not, with esptool, which
resets it into its ROM loader through DTR and RTS: tests/boards/esp_micropython.py), deploys the real firmware
to them (compiled, as `sensing device deploy` does), registers each device, writes its config and waits for its
first reading at the hub."""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import tty
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import flash, workshop_board
from cli.device_deploy import FIRMWARE, firmware_files
from cli.main import app
from cli.workshop_plan import PlanKeeper
from tests.boards.esp_micropython import CHIP_IDS, EspMicroPythonBoard, micropython_bin, modem_lines
from tests.boards.esp_rom import app_image
from tests.boards.simulator import SimulatedBoard
from tests.boards.uf2 import RP2040, RP2350_ARM_S, uf2_file
from tests.hub_process import SENSING, RunningHub

runner = CliRunner()

ROSTER = """\
name,contact,area,placement,kind,board,sharing,purposes
Sam,,easton,outdoor,air,RPI_PICO_W,open,community_awareness;research
Jo,,easton,indoor,damp,RPI_PICO_W,,
Kim,,st werburghs,outdoor,air,RPI_PICO_W,private,community_awareness
"""
# Everyone's boards have no sensor chips: the firmware's emulated sensor, whose first reading (seed 1) is this.
EVERYONE = "collected_by: Easton workshop team\nsensors: emulated\n"
FIRST_READING = "✓ 19.0 °C, 55 % RH"
FILES = len(firmware_files(FIRMWARE))  # what deploy copies to an empty board (the bundle has no libraries yet)
# As on a board after `sensing device deploy`: every module but main.py compiled.
COMPILED = {"main.py", "app.mpy", "config.mpy", "sensors/emulated.mpy"}
NEWER = "1.26.0"  # the MicroPython of the test manifest's RPI_PICO_W image
PICO_UF2 = f"RPI_PICO_W-20250809-v{NEWER}.uf2"
ESP_BIN = f"ESP32_GENERIC-20250809-v{NEWER}.bin"
ESP_S3_BIN = f"ESP32_GENERIC_S3-20250809-v{NEWER}.bin"
ESP_C3_BIN = f"ESP32_GENERIC_C3-20250809-v{NEWER}.bin"


@pytest.fixture
def boards(micropython, tmp_path):
    """Three simulated Pico W boards, plugged in, with nothing on them but MicroPython."""
    started = [SimulatedBoard(tmp_path / f"flash{n}", micropython).start() for n in range(3)]
    yield started
    for board in started:
        board.stop()


def prepared(tmp_path: Path, roster: str) -> Path:
    """The plan `sensing workshop prepare` makes of a roster."""
    (tmp_path / "roster.csv").write_text(roster)
    result = runner.invoke(app, ["workshop", "prepare", str(tmp_path / "roster.csv"), "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    return tmp_path / "plan"


@pytest.fixture
def plan(tmp_path) -> Path:
    return prepared(tmp_path, ROSTER)


@pytest.fixture
def answers(tmp_path) -> Path:
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "all.yaml").write_text(EVERYONE)
    (folder / "3.yaml").write_text("sharing: community\npurposes: [community_awareness, home_advice]\n")  # Jo
    return folder


def workshop_run(plan: Path, hub: RunningHub, key: str, answers: Path, ports: list[str], *options: str) -> list[str]:
    port_options = [word for port in ports for word in ("--port", port)]
    return ["workshop", "run", str(plan), "--hub", hub.url, "--key", key, "--answers-dir", str(answers),
            *port_options, *options]  # fmt: skip


def devices_at(hub: RunningHub) -> list[str]:
    return sorted(device["public_id"] for device in httpx.get(f"{hub.url}/api/v1/devices").json())


def planned(plan: Path) -> dict[int, dict]:
    return {device["row"]: device for device in json.loads((plan / "plan.json").read_text())["devices"]}


def port_of(boards: list[SimulatedBoard], device_id: str) -> str:
    """The board the run gave this device to, by the device id in its /config.json."""
    return next(b.port for b in boards if json.loads((b.root / "config.json").read_text())["device_id"] == device_id)


def final_table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """The table as rich draws it (box.SIMPLE_HEAD without edges), from its rows."""
    header = ("Board", "Resident", "Step", "Result")
    widths = [max(len(row[n]) for row in [header, *rows]) for n in range(4)]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    return [lines[0], "─" * len(lines[0]), *lines[1:]]


def log_lines(port: str, row: int, name: str, *said: str) -> list[str]:
    return [f"{port} row {row} ({name}): {text}" for text in said]


def new_board(micropython: str, port: str, row: int, name: str, device: str, sharing: str, area: str) -> list[str]:
    return log_lines(port, row, name, f"MicroPython {micropython_version(micropython)} already on it: not flashed",
                     f"deployed {FILES} of {FILES} files", f"registered {device}: sharing {sharing}, in {area}",
                     f"first reading at the hub: {FIRST_READING[2:]}")  # fmt: skip


def micropython_version(micropython: str) -> str:
    said = subprocess.run([micropython, "-c", "import sys; print(sys.implementation.version[:3])"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    return ".".join(part.strip() for part in said.strip("()\n").split(","))


def deployed(board: SimulatedBoard) -> set[str]:
    """Which of the files a compiled deploy puts there, and of their .py forms, are on the board."""
    wanted = COMPILED | {"app.py", "config.py", "sensors/emulated.py"}
    return {name for name in wanted if (board.root / name).exists()}


def test_three_boards_are_set_up_at_once_up_to_their_first_readings(boards, hub, facilitator_key, plan, answers,
                                                                     micropython):  # fmt: skip
    ports = [board.port for board in boards]

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, ports, "--parallel", "3"))

    assert (result.exit_code, result.stderr) == (0, "")
    devices = planned(plan)
    assert [devices[row]["state"] for row in (2, 3, 4)] == ["provisioned"] * 3
    ids = {row: devices[row]["device_id"] for row in (2, 3, 4)}
    assert devices_at(hub) == sorted(ids.values())
    port = {row: port_of(boards, ids[row]) for row in ids}
    assert sorted(port.values()) == sorted(ports)
    lines = result.stdout.splitlines()
    assert sorted(lines[:12]) == sorted(
        new_board(micropython, port[2], 2, "Sam", ids[2], "open", "easton")
        + new_board(micropython, port[3], 3, "Jo", ids[3], "community", "easton")
        + new_board(micropython, port[4], 4, "Kim", ids[4], "private", "st werburghs")
    )
    assert lines[12:] == final_table([
        (port[2], "Sam (row 2)", "provisioned", FIRST_READING),
        (port[3], "Jo (row 3)", "provisioned", FIRST_READING),
        (port[4], "Kim (row 4)", "provisioned", FIRST_READING),
    ]) + ["✓ 3 of 3 planned devices provisioned."]  # fmt: skip
    # What each resident chose is what the hub recorded, with the facilitators who took it.
    agreements = [httpx.get(f"{hub.url}/api/v1/devices/{ids[row]}/agreements",
                            headers={"Authorization": f"Bearer {devices[row]['owner_token']}"}).json()
                  for row in (2, 3, 4)]  # fmt: skip
    assert [[(a["sharing"], a["purposes"], a["collected_by"]) for a in mine] for mine in agreements] == [
        [("open", ["community_awareness", "research"], "Easton workshop team")],
        [("community", ["community_awareness", "home_advice"], "Easton workshop team")],
        [("private", ["community_awareness"], "Easton workshop team")],
    ]
    assert [json.loads(b.root.joinpath("config.json").read_text())["sensors"] for b in boards] == ["emulated"] * 3
    assert [deployed(board) for board in boards] == [COMPILED] * 3


def wait_for_plan(plan: Path, done: callable, seconds: float = 60) -> dict[int, dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            devices = planned(plan)
        except (FileNotFoundError, ValueError):
            devices = None
        if devices and done(devices):
            return devices
        time.sleep(0.01)
    raise AssertionError(f"the plan did not get there within {seconds} s")


def test_a_run_killed_half_way_continues_and_registers_no_device_twice(boards, hub, facilitator_key, plan, answers,
                                                                         micropython):  # fmt: skip
    ports = [board.port for board in boards]
    args = workshop_run(plan, hub, facilitator_key, answers, ports, "--parallel", "1")
    first = subprocess.Popen([SENSING, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed (as a crash would) once Jo's device is registered, before her board has sent its first reading.
    before = wait_for_plan(plan, lambda d: d[3]["device_id"] is not None and d[3]["state"] != "provisioned")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (before[2]["state"], before[4]["device_id"]) == ("provisioned", None)
    sam, jo = before[2]["device_id"], before[3]["device_id"]

    again = runner.invoke(app, args)

    assert (again.exit_code, again.stderr) == (0, "")
    devices = planned(plan)
    kim = devices[4]["device_id"]
    assert devices_at(hub) == sorted([sam, jo, kim])
    assert ([devices[row]["device_id"] for row in (2, 3)], devices[3]["device_secret"]) == (
        [sam, jo], before[3]["device_secret"])  # fmt: skip
    assert [port_of(boards, device) for device in (sam, jo, kim)] == ports
    lines = again.stdout.splitlines()
    assert lines[:9] == [
        *log_lines(ports[0], 2, "Sam", f"already provisioned as {sam}: nothing to do"),
        *log_lines(ports[1], 3, "Jo", f"MicroPython {micropython_version(micropython)} already on it: not flashed",
                   f"firmware already there ({FILES} files)",
                   f"already registered as {jo}: kept, with its stored secret",
                   f"first reading at the hub: {FIRST_READING[2:]}"),
        *new_board(micropython, ports[2], 4, "Kim", kim, "private", "st werburghs"),
    ]  # fmt: skip
    assert lines[9:] == final_table([
        (ports[0], "Sam (row 2)", "provisioned", f"✓ already, as {sam}"),
        (ports[1], "Jo (row 3)", "provisioned", FIRST_READING),
        (ports[2], "Kim (row 4)", "provisioned", FIRST_READING),
    ]) + ["✓ 3 of 3 planned devices provisioned."]  # fmt: skip


def test_a_registration_whose_answer_never_reached_the_plan_is_found_again_not_made_twice(
        boards, hub, facilitator_key, plan, answers, monkeypatch):  # fmt: skip
    ports = [f"{board.port}={row}" for board, row in zip(boards, (2, 3, 4), strict=True)]
    args = workshop_run(plan, hub, facilitator_key, answers, ports, "--parallel", "1")
    keep, lost = PlanKeeper.registered, []

    def crash_for_jo(keeper, device, hub_url, registration):
        """The hub registered Jo's device, and the run dies before the plan keeps its answer."""
        if device.row == 3:
            lost.append(registration["device"]["public_id"])
            raise RuntimeError("the laptop's battery ran out")
        keep(keeper, device, hub_url, registration)

    monkeypatch.setattr(PlanKeeper, "registered", crash_for_jo)
    runner.invoke(app, args)
    monkeypatch.undo()
    before = planned(plan)
    assert (before[3]["device_id"], before[3]["registration_key"] is not None, len(devices_at(hub))) == (None, True, 3)

    again = runner.invoke(app, args)

    assert (again.exit_code, again.stderr) == (0, "")
    devices = planned(plan)
    assert [devices[row]["state"] for row in (2, 3, 4)] == ["provisioned"] * 3
    assert devices[3]["device_id"] == lost[0]
    assert devices_at(hub) == sorted(devices[row]["device_id"] for row in (2, 3, 4))


@pytest.fixture
def silent_port():
    """A serial port with nothing answering behind it: a board without MicroPython, or a stuck one."""
    controller, port = os.openpty()
    tty.setraw(port)
    yield os.ttyname(port)
    os.close(port)
    os.close(controller)


def test_a_board_that_does_not_answer_stops_no_other(boards, silent_port, hub, facilitator_key, plan, answers,
                                                      micropython):  # fmt: skip
    ports = [f"{boards[0].port}=4", silent_port, boards[1].port]  # the facilitator gives the first board to Kim

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, ports, "--parallel", "3"))

    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ The device at {silent_port} does not answer like a MicroPython board: put MicroPython on it, "
        "or press its reset button, and try again.\n"
    )
    devices = planned(plan)
    kim, sam = devices[4]["device_id"], devices[2]["device_id"]
    assert (devices[3]["state"], devices[3]["device_id"]) == ("planned", None)
    assert devices_at(hub) == sorted([kim, sam])
    lines = result.stdout.splitlines()
    assert sorted(lines[:8]) == sorted(
        new_board(micropython, boards[0].port, 4, "Kim", kim, "private", "st werburghs")
        + new_board(micropython, boards[1].port, 2, "Sam", sam, "open", "easton")
    )
    assert lines[8:] == final_table([
        (boards[1].port, "Sam (row 2)", "provisioned", FIRST_READING),
        (boards[0].port, "Kim (row 4)", "provisioned", FIRST_READING),
        (silent_port, "–", "failed", "✗ see below"),
    ]) + [
        "✓ 2 of 3 planned devices provisioned.",
        "  Still to set up: row 3 (Jo).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]  # fmt: skip


@pytest.fixture
def firmware_cache(tmp_path, monkeypatch):
    """A firmware manifest knowing a board's MicroPython 1.24.1 and NEWER (RPI_PICO_W's, or the board named), and
    a cache holding the NEWER image given to the function returned; BOOTSEL drives are looked for in
    tmp_path / "media", where the simulated boards' appear. Returns the manifest's path."""
    cache, media = tmp_path / "cache", tmp_path / "media"
    monkeypatch.setenv("SENSING_CACHE_DIR", str(cache))
    monkeypatch.setenv("SENSING_DRIVE_SEARCH", str(media / "*"))

    def cached(data: bytes, board: str = "RPI_PICO_W", others: tuple[str, ...] = (),
               also: dict[str, bytes] | None = None) -> Path:  # fmt: skip
        """`others`: boards the manifest knows too, their images not in the cache; `also`: boards the manifest
        knows too, with their NEWER images in the cache. Called again, the images given replace the cache's."""
        (cache / "firmware").mkdir(parents=True, exist_ok=True)
        images = {board: data, **(also or {})}
        boards = {}
        for name in (*images, *others):
            chip, file, old = {
                "RPI_PICO_W": ("RP2040", PICO_UF2, "RPI_PICO_W-20241129-v1.24.1.uf2"),
                "ESP32_GENERIC": ("ESP32", ESP_BIN, "ESP32_GENERIC-20241129-v1.24.1.bin"),
                "ESP32_GENERIC_S3": ("ESP32-S3", ESP_S3_BIN, "ESP32_GENERIC_S3-20241129-v1.24.1.bin"),
                "ESP32_GENERIC_C3": ("ESP32-C3", ESP_C3_BIN, "ESP32_GENERIC_C3-20241129-v1.24.1.bin"),
            }[name]
            sha256 = None
            if name in images:
                (cache / "firmware" / file).write_bytes(images[name])
                sha256 = hashlib.sha256(images[name]).hexdigest()
            versions = {
                "1.24.1": {"file": old, "url": f"https://example.org/{old}", "sha256": None},
                NEWER: {"file": file, "url": f"https://example.org/{file}", "sha256": sha256},
            }
            boards[name] = {"chip": chip, "versions": versions}
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"boards": boards}))
        return manifest

    return cached


@pytest.fixture
def plug(tmp_path, micropython):
    """plug(name, **options): a simulated board plugged in (started), unplugged after the test."""
    started = []

    def plug(name: str, **options) -> SimulatedBoard:
        started.append(SimulatedBoard(tmp_path / name, micropython, **options).start())
        return started[-1]

    yield plug
    for board in started:
        board.stop()


NAMES = {2: "Sam", 3: "Jo", 4: "Kim"}
CHOSEN = {2: ("open", "easton"), 3: ("community", "easton"), 4: ("private", "st werburghs")}


def flashed_board(port: str, row: int, device: str, *said: str) -> list[str]:
    """The log of a board flashed with NEWER, then set up as the others."""
    sharing, area = CHOSEN[row]
    return log_lines(port, row, NAMES[row], *said, f"deployed {FILES} of {FILES} files",
                     f"registered {device}: sharing {sharing}, in {area}",
                     f"first reading at the hub: {FIRST_READING[2:]}")  # fmt: skip


def test_a_pico_with_an_older_micropython_is_flashed_in_the_run(plug, tmp_path, firmware_cache, hub, facilitator_key,
                                                                plan, answers, micropython):  # fmt: skip
    manifest = firmware_cache(uf2_file(RP2040, blocks=60, version=NEWER))
    by_id, media = tmp_path / "by-id", tmp_path / "media"  # as Linux's /dev/serial/by-id, and /media/$USER
    # While the old board is in BOOTSEL, another device takes its port's number (Linux gives the lowest free
    # ttyACM number): it comes back at another port, and is known there by its unique id.
    old = plug("flash-old", version="1.24.1", media=media, links=by_id, renumbered=True)
    boards = [old, plug("flash1", links=by_id), plug("flash2", links=by_id)]  # all plugged in as the run starts
    left = old.port

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [], "--watch", str(by_id),
                                             "--parallel", "3", "--manifest", str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    devices = planned(plan)
    ids = {row: devices[row]["device_id"] for row in (2, 3, 4)}
    assert devices_at(hub) == sorted(ids.values())
    # Through BOOTSEL and back: its drive came and went, and it runs NEWER at another port.
    assert (old.version, old.drive, list(media.iterdir()), old.port != left) == (NEWER, None, [], True)
    port = {row: port_of(boards, ids[row]) for row in ids}
    flashed = next(row for row in ids if port[row] == old.port)
    expected = flashed_board(old.port, flashed, ids[flashed], f"MicroPython {NEWER} written (it was at {left})")
    for row in sorted(set(ids) - {flashed}):
        expected += new_board(micropython, port[row], row, NAMES[row], ids[row], *CHOSEN[row])
    lines = result.stdout.splitlines()
    assert sorted(lines[:12]) == sorted(expected)
    assert lines[12:] == final_table([(port[row], f"{NAMES[row]} (row {row})", "provisioned", FIRST_READING)
                                      for row in (2, 3, 4)]) + ["✓ 3 of 3 planned devices provisioned."]  # fmt: skip
    assert [deployed(board) for board in boards] == [COMPILED] * 3


def test_a_pico_flashed_at_a_port_given_comes_back_there(plug, tmp_path, firmware_cache, hub, facilitator_key, plan,
                                                          answers):  # fmt: skip
    manifest = firmware_cache(uf2_file(RP2040, blocks=60, version=NEWER))
    board = plug("flash", version="1.24.1", media=tmp_path / "media")
    port = board.port

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [f"{port}=3"], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    jo = planned(plan)[3]["device_id"]
    assert (board.version, board.port, devices_at(hub), deployed(board)) == (NEWER, port, [jo], COMPILED)
    assert result.stdout.splitlines() == flashed_board(port, 3, jo, f"MicroPython {NEWER} written") + final_table(
        [(port, "Jo (row 3)", "provisioned", FIRST_READING)]) + [
        "✓ 1 of 3 planned devices provisioned.",
        "  Still to set up: row 2 (Sam), row 4 (Kim).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]  # fmt: skip


def test_a_uf2_for_another_chip_in_the_cache_is_refused_before_the_board_leaves_its_port(
        plug, tmp_path, firmware_cache, hub, facilitator_key, plan, answers):  # fmt: skip
    manifest = firmware_cache(uf2_file(RP2350_ARM_S, blocks=60, version=NEWER))
    board = plug("flash", version="1.24.1", media=tmp_path / "media")
    port = board.port

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [port], "--manifest",
                                             str(manifest)))  # fmt: skip

    # Never sent to BOOTSEL, where a file its bootrom ignores would have left it: still at its port.
    assert (board.port, board.drive, board.version) == (port, None, "1.24.1")
    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ Row 2 (Sam): {PICO_UF2} is for RP2350 (Arm) boards, but this board is an RP2040 (a Pico or Pico W): "
        "use the firmware made for your board.\n"
    )
    assert (planned(plan)[2]["state"], devices_at(hub), (tmp_path / "media").exists()) == ("planned", [], False)
    assert result.stdout.splitlines() == final_table([(port, "Sam (row 2)", "failed", "✗ see below")]) + [
        "✓ 0 of 3 planned devices provisioned.",
        "  Still to set up: row 2 (Sam), row 3 (Jo), row 4 (Kim).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]


def test_a_pico_flashed_while_every_place_of_the_run_is_taken_is_known_again_at_its_port(
        plug, tmp_path, firmware_cache, hub, facilitator_key, plan, answers, micropython):  # fmt: skip
    """Its run holds its place (--parallel) until it hears of the board back at a port: the look that tells it so
    does not wait for a place."""
    manifest = firmware_cache(uf2_file(RP2040, blocks=60, version=NEWER))
    old = plug("flash-old", version="1.24.1", media=tmp_path / "media")
    other = plug("flash-other")  # Sam's, waiting for the one place, held by Jo's
    port = old.port

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [f"{port}=3", other.port],
                                             "--parallel", "1", "--manifest", str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    devices = planned(plan)
    jo, sam = devices[3]["device_id"], devices[2]["device_id"]
    assert (old.version, old.port, devices_at(hub), deployed(old)) == (NEWER, port, sorted([jo, sam]), COMPILED)
    assert result.stdout.splitlines() == flashed_board(port, 3, jo, f"MicroPython {NEWER} written") + new_board(
        micropython, other.port, 2, "Sam", sam, "open", "easton") + final_table([
            (other.port, "Sam (row 2)", "provisioned", FIRST_READING),
            (port, "Jo (row 3)", "provisioned", FIRST_READING)]) + [
        "✓ 2 of 3 planned devices provisioned.",
        "  Still to set up: row 4 (Kim).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]  # fmt: skip


def test_a_pico_whose_bootsel_drive_never_appears_fails_alone_and_a_later_run_sets_it_up(
        plug, tmp_path, firmware_cache, hub, facilitator_key, plan, answers, micropython, monkeypatch):  # fmt: skip
    monkeypatch.setattr(flash, "DRIVE_WAIT", 1)  # seconds for its drive to appear (20 at a workshop)
    manifest = firmware_cache(uf2_file(RP2040, blocks=60, version=NEWER))
    # Its drive appears where this computer does not look, as on a desktop that does not mount USB drives.
    stuck = plug("flash-stuck", version="1.24.1", media=tmp_path / "unmounted")
    other = plug("flash-other")
    port = stuck.port

    # One board at a time (a simulated board takes a new /dev/pts at each restart, maybe the number the other left
    # for BOOTSEL, which the run would look at): Jo's first.
    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [f"{port}=3", other.port],
                                             "--parallel", "1", "--manifest", str(manifest)))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ Row 3 (Jo): The board at {port} was sent to BOOTSEL, but no drive appeared: have your computer mount "
        "USB drives as they are plugged in (or set SENSING_DRIVE_SEARCH to where it mounts them), then unplug the "
        "board, plug it in again, and run this again.\n"
    )
    # In BOOTSEL, nothing copied; Jo's row as it was; Sam's board set up as if nothing had happened.
    assert (stuck.port, stuck.drive, stuck.version) == (None, tmp_path / "unmounted" / "RPI-RP2", "1.24.1")
    devices = planned(plan)
    sam = devices[2]["device_id"]
    assert (devices[3]["state"], devices[3]["device_id"], devices_at(hub)) == ("planned", None, [sam])
    assert result.stdout.splitlines() == new_board(micropython, other.port, 2, "Sam", sam, "open", "easton") + (
        final_table([(other.port, "Sam (row 2)", "provisioned", FIRST_READING),
                     (port, "Jo (row 3)", "failed", "✗ see below")])) + [
        "✓ 1 of 3 planned devices provisioned.",
        "  Still to set up: row 3 (Jo), row 4 (Kim).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]  # fmt: skip

    # Drives mounted now, the board unplugged and plugged in again (it starts the MicroPython it had): the same
    # command sets Jo's board up.
    stuck.media = tmp_path / "media"
    port = stuck.replug()
    again = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [f"{port}=3", other.port],
                                            "--parallel", "1", "--manifest", str(manifest)))  # fmt: skip

    assert (again.exit_code, again.stderr) == (0, "")
    devices = planned(plan)
    jo = devices[3]["device_id"]
    assert (devices[3]["state"], devices_at(hub)) == ("provisioned", sorted([sam, jo]))
    assert (stuck.version, deployed(stuck)) == (NEWER, COMPILED)
    assert again.stdout.splitlines()[:5] == flashed_board(port, 3, jo, f"MicroPython {NEWER} written") + log_lines(
        other.port, 2, "Sam", f"already provisioned as {sam}: nothing to do")  # fmt: skip


def test_a_pico_that_does_not_come_back_after_its_uf2_fails_alone_and_a_later_run_sets_it_up(
        plug, tmp_path, firmware_cache, hub, facilitator_key, plan, answers, micropython, monkeypatch):  # fmt: skip
    monkeypatch.setattr(workshop_board, "BACK_AFTER_FLASH", 2)  # seconds for it to come back (30 at a workshop)
    manifest = firmware_cache(uf2_file(RP2040, blocks=60, version=NEWER))
    # It writes the UF2 and restarts, but its USB serial port does not come back (a hub that drops it).
    lost = plug("flash-lost", version="1.24.1", media=tmp_path / "media", lost_after_flash=True)
    other = plug("flash-other")
    port = lost.port

    # One board at a time, Sam's first: while Jo's is away its port is looked at again for it, and a simulated
    # board's restart may take that /dev/pts number.
    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [other.port, f"{port}=3"],
                                             "--parallel", "1", "--manifest", str(manifest)))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ Row 3 (Jo): The board flashed at {port} did not come back at a serial port within 2 s: unplug it and "
        "plug it in again.\n"
    )
    # The UF2 was written and its drive went; no port came back.
    assert (lost.port, lost.drive, lost.version, list((tmp_path / "media").iterdir())) == (None, None, NEWER, [])
    devices = planned(plan)
    sam = devices[2]["device_id"]
    assert (devices[3]["state"], devices[3]["device_id"], devices_at(hub)) == ("planned", None, [sam])
    assert result.stdout.splitlines() == new_board(micropython, other.port, 2, "Sam", sam, "open", "easton") + (
        final_table([(other.port, "Sam (row 2)", "provisioned", FIRST_READING),
                     (port, "Jo (row 3)", "failed", "✗ see below")])) + [
        "✓ 1 of 3 planned devices provisioned.",
        "  Still to set up: row 3 (Jo), row 4 (Kim).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done.",
    ]  # fmt: skip

    # Unplugged and plugged in again, it is at its port with the MicroPython written: the same command goes on.
    port = lost.replug()
    again = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [other.port, f"{port}=3"],
                                            "--parallel", "1", "--manifest", str(manifest)))  # fmt: skip

    assert (again.exit_code, again.stderr) == (0, "")
    devices = planned(plan)
    jo = devices[3]["device_id"]
    assert (devices[3]["state"], devices_at(hub), deployed(lost)) == ("provisioned", sorted([sam, jo]), COMPILED)
    assert again.stdout.splitlines()[:5] == log_lines(other.port, 2, "Sam", f"already provisioned as {sam}: nothing "
                                                      "to do") + log_lines(
        port, 3, "Jo", f"MicroPython {NEWER} already on it: not flashed", f"deployed {FILES} of {FILES} files",
        f"registered {jo}: sharing community, in easton", f"first reading at the hub: {FIRST_READING[2:]}")  # fmt: skip


ESP_ROSTER = """\
name,contact,area,placement,kind,board,sharing,purposes
Sam,,easton,outdoor,air,ESP32_GENERIC,open,community_awareness;research
Jo,,easton,indoor,damp,RPI_PICO_W,,
"""


@pytest.fixture
def esp_plan(tmp_path) -> Path:
    """A plan whose row 2 (Sam) is an ESP32_GENERIC and row 3 (Jo) a Pico W."""
    return prepared(tmp_path, ESP_ROSTER)


@pytest.fixture
def plug_esp(tmp_path, micropython):
    """plug_esp(name, firmware, **options): an ESP32 DevKit plugged in (tests/boards/esp_micropython.py), its flash
    holding `firmware` (None: blank), its DTR and RTS working for the command run in this process (lines=False:
    its port refuses them, as a pty does); unplugged after."""
    with contextlib.ExitStack() as plugged:

        def plug(name: str, firmware: bytes | None, lines: bool = True, **options) -> EspMicroPythonBoard:
            board = EspMicroPythonBoard(tmp_path / name, micropython, firmware=firmware, **options)
            plugged.enter_context(board)
            if lines:
                plugged.enter_context(modem_lines(board))
            return board

        yield plug


@pytest.mark.parametrize("firmware", [None, micropython_bin("esp32", "1.24.1")], ids=["blank", "older"])
def test_an_esp32_without_the_micropython_wanted_is_flashed_in_the_run(plug_esp, firmware, firmware_cache, hub,
                                                                       facilitator_key, esp_plan, answers):  # fmt: skip
    image = micropython_bin("esp32", NEWER)
    manifest = firmware_cache(image, board="ESP32_GENERIC")
    board = plug_esp("fs", firmware)
    (board.root / "notes.txt").write_text("an earlier project's file")  # in the flash's filesystem
    port = board.port

    result = runner.invoke(app, workshop_run(esp_plan, hub, facilitator_key, answers, [port], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    sam = planned(esp_plan)[2]["device_id"]
    assert devices_at(hub) == [sam]
    assert result.stdout.splitlines() == flashed_board(port, 2, sam, f"MicroPython {NEWER} written") + final_table(
        [(port, "Sam (row 2)", "provisioned", FIRST_READING)]) + [
        "✓ 1 of 2 planned devices provisioned.", "  Still to set up: row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip
    # Reset into its ROM loader by esptool (nobody held BOOT), the stub at 460800 erased the whole chip and wrote
    # the cached image at the ESP32's 0x1000, and esptool's hard reset booted it: MicroPython NEWER, which runs.
    # The blank one was asked its chip first, in its loader, and reset out of it.
    asked = ["download", "firmware"] if firmware is None else []
    assert (board.boots, board.installed, board.running) == (["firmware", *asked, "download", "firmware"], NEWER,
                                                             NEWER)  # fmt: skip
    assert board.flash[0x1000 : 0x1000 + len(image)] == image and board.bauds == [(460800, 115200)]
    assert {"ERASE_FLASH", "FLASH_DEFL_END"} <= set(board.stub_commands)
    # The erase took the old filesystem: what is there now is the run's.
    assert (deployed(board), (board.root / "notes.txt").exists()) == (COMPILED, False)
    assert json.loads((board.root / "config.json").read_text())["device_id"] == sam


def test_an_esp32_image_for_another_chip_in_the_cache_is_refused_before_the_board_is_reset(
        plug_esp, firmware_cache, hub, facilitator_key, esp_plan, answers):  # fmt: skip
    manifest = firmware_cache(micropython_bin("esp32s3", NEWER), board="ESP32_GENERIC")
    board = plug_esp("fs", micropython_bin("esp32", "1.24.1"))
    port = board.port

    result = runner.invoke(app, workshop_run(esp_plan, hub, facilitator_key, answers, [port], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ Row 2 (Sam): {ESP_BIN} is made for the ESP32-S3, but this board is an ESP32 (ESP32_GENERIC): "
        "use the firmware made for your board.\n"
    )
    # Never reset into its loader: still running its MicroPython, nothing written.
    assert (board.boots, board.commands, board.installed, board.running) == (["firmware"], [], "1.24.1", "1.24.1")
    assert (planned(esp_plan)[2]["state"], devices_at(hub)) == ("planned", [])
    assert result.stdout.splitlines() == final_table([(port, "Sam (row 2)", "failed", "✗ see below")]) + [
        "✓ 0 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam), row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip


NOT_IN_LOADER = (
    "✗ The device at {port} answers neither like a MicroPython board nor like an ESP32 in its bootloader: if it is "
    "an ESP32, hold its BOOT button, press and release RESET, let go of BOOT, and try again.\n"
)


def test_an_esp32_without_the_auto_program_circuit_is_told_to_be_put_in_its_loader_by_hand(
        plug_esp, firmware_cache, hub, facilitator_key, esp_plan, answers):  # fmt: skip
    manifest = firmware_cache(micropython_bin("esp32", NEWER), board="ESP32_GENERIC")
    board = plug_esp("fs", None, auto_program=False)  # blank, and esptool's DTR/RTS reach neither EN nor IO0
    port = board.port

    result = runner.invoke(app, workshop_run(esp_plan, hub, facilitator_key, answers, [port], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == NOT_IN_LOADER.format(port=port)
    assert (board.boots, board.commands, board.flash.count(0xFF)) == (["firmware"], [], len(board.flash))
    assert (planned(esp_plan)[2]["state"], devices_at(hub)) == ("planned", [])
    assert result.stdout.splitlines() == final_table([(port, "–", "failed", "✗ see below")]) + [
        "✓ 0 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam), row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip


def test_an_esp32_at_a_port_without_dtr_and_rts_gets_one_sentence_and_no_esptool_warning(
        plug_esp, firmware_cache, hub, facilitator_key, esp_plan, answers):  # fmt: skip
    """esptool warns once a process that the chip was not reset: run as its own process, as at a workshop."""
    manifest = firmware_cache(micropython_bin("esp32", NEWER), board="ESP32_GENERIC")
    board = plug_esp("fs", None, lines=False)  # blank, at a port that refuses DTR/RTS
    port = board.port

    args = workshop_run(esp_plan, hub, facilitator_key, answers, [port], "--manifest", str(manifest))

    result = subprocess.run([SENSING, *args], capture_output=True, text=True, timeout=300)

    assert (result.returncode, result.stderr) == (1, NOT_IN_LOADER.format(port=port))
    assert (board.boots, board.commands, board.flash.count(0xFF)) == (["firmware"], [], len(board.flash))
    assert result.stdout.splitlines() == final_table([(port, "–", "failed", "✗ see below")]) + [
        "✓ 0 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam), row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip


def test_an_esp32_put_in_its_loader_by_hand_at_a_port_without_dtr_and_rts_is_flashed_then_told_to_be_reset(
        plug_esp, firmware_cache, hub, facilitator_key, esp_plan, answers):  # fmt: skip
    image = micropython_bin("esp32", NEWER)
    manifest = firmware_cache(image, board="ESP32_GENERIC")
    board = plug_esp("fs", None, lines=False, boot_button=True)  # blank, BOOT held as it was plugged in
    port = board.port
    args = workshop_run(esp_plan, hub, facilitator_key, answers, [port], "--manifest", str(manifest))

    result = subprocess.run([SENSING, *args], capture_output=True, text=True, timeout=300)

    assert (result.returncode, result.stderr) == (1, (
        f"✗ Row 2 (Sam): {ESP_BIN} was written to the board at {port}, but its port could not restart it: press its "
        "reset button, and run this again.\n"))  # fmt: skip
    # Nothing could reset it: in its loader from the start, it holds the image and waits there.
    assert (board.boots, board.loader, board.installed) == (["download"], "stub", NEWER)
    assert board.flash[0x1000 : 0x1000 + len(image)] == image
    assert (planned(esp_plan)[2]["state"], devices_at(hub)) == ("planned", [])
    assert result.stdout.splitlines() == final_table([(port, "Sam (row 2)", "failed", "✗ see below")]) + [
        "✓ 0 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam), row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip


ESP_S3_ROSTER = """\
name,contact,area,placement,kind,board,sharing,purposes
Sam,,easton,outdoor,air,ESP32_GENERIC,open,community_awareness;research
Jo,,easton,indoor,damp,ESP32_GENERIC_S3,,
"""


def test_a_blank_esp32_s3_is_asked_its_chip_and_gets_the_row_of_an_s3(plug_esp, tmp_path, firmware_cache, hub,
                                                                       facilitator_key, answers):  # fmt: skip
    plan = prepared(tmp_path, ESP_S3_ROSTER)
    image = micropython_bin("esp32s3", NEWER)
    manifest = firmware_cache(image, board="ESP32_GENERIC_S3", others=("ESP32_GENERIC",))
    board = plug_esp("fs", None, chip="esp32s3")  # blank: it says nothing of itself but "invalid header"
    port = board.port

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [port], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    jo = planned(plan)[3]["device_id"]
    assert devices_at(hub) == [jo]
    assert result.stdout.splitlines() == flashed_board(port, 3, jo, f"MicroPython {NEWER} written") + final_table(
        [(port, "Jo (row 3)", "provisioned", FIRST_READING)]) + [
        "✓ 1 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam).",
        f"  Run the same command again to continue: {plan}/plan.json keeps every step done."]  # fmt: skip
    # Asked its chip in its loader and reset out of it, then flashed with the S3's image at its 0x0.
    assert (board.boots, board.installed, board.running) == (["firmware", "download", "firmware", "download",
                                                              "firmware"], NEWER, NEWER)  # fmt: skip
    assert board.flash[: len(image)] == image
    assert json.loads((board.root / "config.json").read_text())["device_id"] == jo


@pytest.mark.parametrize(("chosen", "said"), [
    ("", "✗ This board is an ESP32-S3 without MicroPython, and no row of the plan is for one: add a row for an "
         "ESP32_GENERIC_S3 board to the roster and run sensing workshop prepare again, or unplug it.\n"),
    ("=2", "✗ This board is an ESP32-S3, but row 2 (Sam) is for an ESP32_GENERIC (ESP32): choose the row of an "
           "ESP32-S3 board for its port (--port PORT=ROW), or unplug it.\n"),
], ids=["next_row", "row_chosen"])  # fmt: skip
def test_a_blank_esp32_whose_chip_no_row_wants_is_left_as_it_was(plug_esp, firmware_cache, hub, facilitator_key,
                                                                  esp_plan, answers, chosen, said):  # fmt: skip
    manifest = firmware_cache(micropython_bin("esp32", NEWER), board="ESP32_GENERIC", others=("ESP32_GENERIC_S3",))
    board = plug_esp("fs", None, chip="esp32s3")  # the plan's ESP32 row is for an ESP32_GENERIC
    port = board.port

    result = runner.invoke(app, workshop_run(esp_plan, hub, facilitator_key, answers, [port + chosen], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (1, said)
    # Asked its chip in its loader, and reset out of it: it runs what it ran (nothing: it is blank), untouched.
    assert (board.boots, board.loader, board.flash.count(0xFF)) == (["firmware", "download", "firmware"], None,
                                                                    len(board.flash))  # fmt: skip
    assert [name for name in board.commands if name.startswith(("FLASH", "MEM", "ERASE"))] == []
    assert (planned(esp_plan)[2]["state"], devices_at(hub)) == ("planned", [])
    assert result.stdout.splitlines() == final_table([(port, "–", "failed", "✗ see below")]) + [
        "✓ 0 of 2 planned devices provisioned.", "  Still to set up: row 2 (Sam), row 3 (Jo).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done."]  # fmt: skip


def test_an_esp32_that_does_not_start_micropython_after_flashing_fails_alone_and_a_later_run_sets_it_up(
        plug_esp, plug, firmware_cache, hub, facilitator_key, esp_plan, answers, micropython, monkeypatch):  # fmt: skip
    monkeypatch.setattr(workshop_board, "BACK_AFTER_FLASH", 2)  # seconds for MicroPython to start (30 at a workshop)
    # An image the ROM boots (its header and checksum hold) in which no MicroPython starts: the board is silent.
    manifest = firmware_cache(app_image(CHIP_IDS["esp32"]), board="ESP32_GENERIC", others=("RPI_PICO_W",))
    board = plug_esp("fs", micropython_bin("esp32", "1.24.1"))
    pico = plug("flash")  # Jo's, with the MicroPython wanted already
    port = board.port
    args = workshop_run(esp_plan, hub, facilitator_key, answers, [port, pico.port], "--manifest", str(manifest),
                        "--micropython", NEWER)  # fmt: skip

    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert result.stderr == (
        f"✗ Row 2 (Sam): The board at {port} did not start MicroPython within 2 s of {ESP_BIN} being written to "
        "it: press its reset button, and run this again.\n"
    )
    # Written, restarted by esptool, and silent since.
    assert (board.boots, board.installed, board.running) == (["firmware", "download", "firmware"], None, None)
    devices = planned(esp_plan)
    jo = devices[3]["device_id"]
    assert (devices[2]["state"], devices[2]["device_id"], devices_at(hub)) == ("planned", None, [jo])
    assert result.stdout.splitlines() == new_board(micropython, pico.port, 3, "Jo", jo, "community", "easton") + (
        final_table([(port, "Sam (row 2)", "failed", "✗ see below"),
                     (pico.port, "Jo (row 3)", "provisioned", FIRST_READING)])) + [
        "✓ 1 of 2 planned devices provisioned.",
        "  Still to set up: row 2 (Sam).",
        f"  Run the same command again to continue: {esp_plan}/plan.json keeps every step done.",
    ]  # fmt: skip

    # With MicroPython's image in the cache, the same command: the silent board is asked its chip, and flashed.
    image = micropython_bin("esp32", NEWER)
    firmware_cache(image, board="ESP32_GENERIC", others=("RPI_PICO_W",))
    again = runner.invoke(app, args)

    assert (again.exit_code, again.stderr) == (0, "")
    devices = planned(esp_plan)
    sam = devices[2]["device_id"]
    assert (devices[2]["state"], devices_at(hub)) == ("provisioned", sorted([sam, jo]))
    assert (board.installed, board.running, board.flash[0x1000 : 0x1000 + len(image)] == image) == (NEWER, NEWER, True)
    assert sorted(again.stdout.splitlines()[:5]) == sorted(
        flashed_board(port, 2, sam, f"MicroPython {NEWER} written")
        + log_lines(pico.port, 3, "Jo", f"already provisioned as {jo}: nothing to do"))  # fmt: skip


TWO_ESP_ROSTER = """\
name,contact,area,placement,kind,board,sharing,purposes
Sam,,easton,outdoor,air,ESP32_GENERIC,open,community_awareness;research
Jo,,easton,indoor,damp,ESP32_GENERIC,,
"""


def test_two_esp32_boards_are_flashed_in_the_same_run_up_to_their_first_readings(
        plug_esp, tmp_path, firmware_cache, hub, facilitator_key, answers):  # fmt: skip
    plan = prepared(tmp_path, TWO_ESP_ROSTER)
    image = micropython_bin("esp32", NEWER)
    manifest = firmware_cache(image, board="ESP32_GENERIC")
    boards = [plug_esp("blank", None), plug_esp("older", micropython_bin("esp32", "1.24.1"))]
    ports = [board.port for board in boards]

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, ports, "--parallel", "2",
                                             "--manifest", str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    devices = planned(plan)
    ids = {row: devices[row]["device_id"] for row in (2, 3)}
    assert ([devices[row]["state"] for row in (2, 3)], devices_at(hub)) == (["provisioned"] * 2,
                                                                          sorted(ids.values()))  # fmt: skip
    port = {row: port_of(boards, ids[row]) for row in ids}
    assert sorted(port.values()) == sorted(ports)
    lines = result.stdout.splitlines()
    written = f"MicroPython {NEWER} written"
    assert sorted(lines[:8]) == sorted(flashed_board(port[2], 2, ids[2], written)
                                       + flashed_board(port[3], 3, ids[3], written))  # fmt: skip
    assert lines[8:] == final_table([(port[2], "Sam (row 2)", "provisioned", FIRST_READING),
                                      (port[3], "Jo (row 3)", "provisioned", FIRST_READING)]) + [
        "✓ 2 of 2 planned devices provisioned."]  # fmt: skip
    # Both through their ROM loaders and esptool's stub at 460800, each holding the image at 0x1000 and running it.
    # The blank one was asked its chip first.
    assert [board.boots for board in boards] == [["firmware", "download", "firmware", "download", "firmware"],
                                                 ["firmware", "download", "firmware"]]  # fmt: skip
    for board in boards:
        assert (board.installed, board.running, board.bauds) == (NEWER, NEWER, [(460800, 115200)])
        assert board.flash[0x1000 : 0x1000 + len(image)] == image
        assert deployed(board) == COMPILED


S3_C3_ROSTER = """\
name,contact,area,placement,kind,board,sharing,purposes
Sam,,easton,outdoor,air,ESP32_GENERIC_S3,open,community_awareness;research
Jo,,easton,indoor,damp,ESP32_GENERIC_C3,,
"""


def test_an_esp32_s3_and_an_esp32_c3_are_each_flashed_with_their_own_image_and_provisioned(
        plug_esp, tmp_path, firmware_cache, hub, facilitator_key, answers):  # fmt: skip
    plan = prepared(tmp_path, S3_C3_ROSTER)
    s3_image, c3_image = micropython_bin("esp32s3", NEWER), micropython_bin("esp32c3", NEWER)
    manifest = firmware_cache(s3_image, board="ESP32_GENERIC_S3", also={"ESP32_GENERIC_C3": c3_image},
                              others=("ESP32_GENERIC",))  # fmt: skip
    # The S3 tells its board at the REPL (an older MicroPython); the blank C3, its chip in its ROM loader.
    s3 = plug_esp("s3", micropython_bin("esp32s3", "1.24.1"), chip="esp32s3")
    c3 = plug_esp("c3", None, chip="esp32c3")

    result = runner.invoke(app, workshop_run(plan, hub, facilitator_key, answers, [c3.port, s3.port], "--manifest",
                                             str(manifest)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    devices = planned(plan)
    sam, jo = devices[2]["device_id"], devices[3]["device_id"]
    assert ([devices[row]["state"] for row in (2, 3)], devices_at(hub)) == (["provisioned"] * 2, sorted([sam, jo]))
    lines = result.stdout.splitlines()
    assert sorted(lines[:8]) == sorted(flashed_board(s3.port, 2, sam, f"MicroPython {NEWER} written")
                                       + flashed_board(c3.port, 3, jo, f"MicroPython {NEWER} written"))  # fmt: skip
    assert lines[8:] == final_table([(s3.port, "Sam (row 2)", "provisioned", FIRST_READING),
                                      (c3.port, "Jo (row 3)", "provisioned", FIRST_READING)]) + [
        "✓ 2 of 2 planned devices provisioned."]  # fmt: skip
    # Each chip's own image, at its 0x0, running; the C3 asked its chip in its loader first.
    assert (s3.boots, c3.boots) == (["firmware", "download", "firmware"],
                                    ["firmware", "download", "firmware", "download", "firmware"])  # fmt: skip
    for board, image, device, name in ((s3, s3_image, sam, "ESP32_GENERIC_S3"), (c3, c3_image, jo, "ESP32_GENERIC_C3")):
        assert (board.installed, board.running, board.flash[: len(image)] == image) == (NEWER, NEWER, True)
        config = json.loads((board.root / "config.json").read_text())
        assert (config["device_id"], config["board"], deployed(board)) == (device, name, COMPILED)
        # The board's pin map, which the firmware reads by the config's board.
        pin_map = Path("boards") / f"{name}.json"
        assert (board.root / pin_map).read_bytes() == (FIRMWARE / pin_map).read_bytes()


@pytest.mark.mosquitto
def test_with_a_tls_broker_every_board_gets_its_ca_certificate(plug, tls_hub, plan, answers, micropython):
    board = plug("flash")
    hub, broker = tls_hub.hub, tls_hub.broker

    result = runner.invoke(app, workshop_run(plan, hub, tls_hub.facilitator_key, answers, [f"{board.port}=2"],
                                             "--broker-ca", str(tls_hub.certificates.ca)))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    sam = planned(plan)[2]["device_id"]
    assert result.stdout.splitlines()[:4] == new_board(micropython, board.port, 2, "Sam", sam, "open", "easton")
    config = json.loads((board.root / "config.json").read_text())
    assert (config["broker_port"], config["broker_tls"], config["broker_ca"]) == (broker.tls_port, True,
                                                                                 "/broker-ca.der")  # fmt: skip
    assert (board.root / "broker-ca.der").read_bytes() == tls_hub.certificates.ca_der().read_bytes()
    assert broker.ports_of(sam) == [broker.tls_port]


@pytest.mark.mosquitto
def test_a_tls_broker_without_its_ca_certificate_stops_the_run_before_any_board(plug, tls_hub, plan, answers):
    board = plug("flash")

    result = runner.invoke(app, workshop_run(plan, tls_hub.hub, tls_hub.facilitator_key, answers, [board.port]))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The hub's broker (127.0.0.1:{tls_hub.broker.tls_port}) speaks TLS: give the CA certificate that signed "
        "its certificate with --broker-ca (the hub's operator has it: ca.pem).\n"
    )
    assert (planned(plan)[2]["state"], (board.root / "config.json").exists()) == ("planned", False)
