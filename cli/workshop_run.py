"""`sensing workshop run`: boards set up as they are plugged in, several at once, with a live table.

    sensing workshop run plan --hub http://192.168.1.10:8000 --key fac_… --answers-dir answers

Each board plugged in is matched to the next planned device for its type of board (one without MicroPython: for
its chip, which an ESP32's loader tells), or to the row the facilitator chose (--port /dev/ttyACM0=5), then
flashed (not when it runs the wanted MicroPython already), deployed and provisioned, up to its first reading at
the hub (cli/workshop_board.py). The plan is saved after every step, so
the same command continues an interrupted workshop, and a device is never registered twice.
"""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import typer
from rich import box
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from cli.app import abort, console, err_console
from cli.board_watch import PortSource, Watcher, fixed_ports, linked_ports, usb_serial_ports
from cli.consent_questions import SHARING, choose, choose_several
from cli.device_deploy import BUNDLE, FIRMWARE, bundled_libraries, firmware_files
from cli.firmware_images import MANIFEST, FirmwareError, load_manifest
from cli.hubclient import DEFAULT_HUB, call
from cli.provision import BROKER_CA_OPTION, FIRST_READING_WAIT, hub_for_devices
from cli.roster import PLAN_FILE, PlannedDevice
from cli.workshop_board import BoardRun, Workshop, first_look, set_up
from cli.workshop_plan import PlanKeeper, who

LOOK_EVERY = 0.5  # seconds between looking for boards plugged in


def open_workshop(plan_dir: Path, hub: str, key: str, say: Callable[[BoardRun, str], None],
                  ca_file: Path | None = None, manifest: Path = MANIFEST, **options) -> Workshop:  # fmt: skip
    """The plan, the hub's broker (and its CA certificate) and consent text, the firmware: what every board needs;
    abort if one lacks."""
    if not (plan_dir / PLAN_FILE).exists():
        abort(escape(f"There is no plan in {plan_dir}: make one with sensing workshop prepare roster.csv "
                     f"--out {plan_dir}."))  # fmt: skip
    info, ca = hub_for_devices(hub, key, ca_file)
    try:
        known = load_manifest(manifest)
    except FirmwareError as e:
        abort(str(e))
    return Workshop(hub=hub, key=key, info=info, purposes=call(hub, "GET", "/api/v1/consent/purposes"),
                    keeper=PlanKeeper(plan_dir), manifest=known, files=firmware_files(FIRMWARE),
                    libraries=bundled_libraries(BUNDLE), say=say, broker_ca=ca, **options)  # fmt: skip


def run_boards(workshop: Workshop, source: PortSource | None, ports: list[str], parallel: int,
               refresh: Callable[[list[BoardRun]], None] = lambda boards: None) -> list[BoardRun]:  # fmt: skip
    """Set up the boards at `ports` (each once), or as `source` shows them plugged in until every planned device
    is provisioned. Ctrl-C stops the boards at their next step; the plan keeps every finished one.

    A Pico sent to BOOTSEL to be flashed leaves its port, and comes back at a port: the same, or (Linux numbers
    ports in the order boards appear) another. A port appearing where no board is being set up, or where one
    went away, is looked at, and the flashed Pico's run takes it up there (Workshop.welcome_back). With `ports`,
    only those are looked at again, for a Pico coming back."""
    boards: list[BoardRun] = []
    watcher = Watcher(source or fixed_ports(ports))
    pool = ThreadPoolExecutor(parallel, thread_name_prefix="board")
    lookers: list[threading.Thread] = []

    def start(port: str) -> None:
        board = BoardRun(port)
        boards.append(board)
        if workshop.awaiting():  # it may be a flashed Pico back, whose run holds a place in the pool meanwhile
            lookers.append(threading.Thread(target=look_first, args=(board,), name=f"look {port}", daemon=True))
            lookers[-1].start()
        else:
            pool.submit(set_up, board, workshop)

    def look_first(board: BoardRun) -> None:
        """The board at a port that appeared while a flashed Pico is awaited, looked at now (first_look), and set
        up in the pool unless it is that Pico."""
        try:
            looked = first_look(board, workshop)
            if looked is None:  # the Pico: its own run goes on
                return
        except Exception:  # noqa: BLE001 - set_up looks again, and tells what went wrong
            looked = None
        try:
            pool.submit(set_up, board, workshop, looked)
        except RuntimeError:  # the run is stopping (Ctrl-C): the pool takes no more boards
            board.enter("stopped", "– stopped")
            board.finished = True

    def at(port: str) -> BoardRun | None:
        """The board last set up at `port` (a flashed Pico back at another port is there now)."""
        return next((board for board in reversed(boards) if board.port == port and not board.handed_over), None)

    try:
        for port in ports:
            start(port)
        while True:
            appeared = watcher.new()
            # A flashed Pico back at its port between two looks was never seen gone: its port is looked at too.
            appeared += [b.port for b in boards if b.away and b.port in watcher.present and b.port not in appeared]
            for port in appeared:
                there = at(port)
                if there is not None and there.away:
                    there.away = False  # its port is looked at once: the board there is it, or another
                    start(port)
                elif source and (there is None or there.finished):  # a board plugged in, or back at a port it left
                    start(port)
            refresh(boards)
            if all(board.finished for board in boards) and (source is None or not workshop.keeper.remaining()):
                break
            time.sleep(LOOK_EVERY)
    except KeyboardInterrupt:
        workshop.stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for board in boards:
            if not board.finished:  # never started: cancelled
                board.enter("stopped", "– stopped")
                board.finished = True
        raise
    finally:
        for looker in lookers:
            looker.join()
        pool.shutdown(wait=True)
        refresh(boards)
    return boards


def table(boards: list[BoardRun]) -> Table:
    shown = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("Board", "Resident", "Step", "Result"):
        shown.add_column(name, no_wrap=name != "Result")
    shown_boards = [board for board in boards if not board.handed_over]  # a flashed Pico back: shown once
    order = sorted(shown_boards, key=lambda b: (b.device is None, b.device.row if b.device else 0, b.port))
    for board in order:
        resident = f"{board.device.name} (row {board.device.row})" if board.device else "–"
        shown.add_row(board.port, resident, board.step, board.result)
    return shown


@contextmanager
def live_table() -> Iterator[tuple[Callable[[list[BoardRun]], None], Live | None]]:
    """A table redrawn in place where there is a terminal; elsewhere nothing until the final one."""
    if not console.is_terminal:
        yield (lambda boards: None), None
        return
    with Live(table([]), console=console, refresh_per_second=4, transient=True) as live:
        yield (lambda boards: live.update(table(boards))), live


def parse_ports(given: list[str]) -> tuple[list[str], dict[str, int]]:
    """PORT or PORT=ROW each: the ports, and the rows the facilitator chose."""
    ports, assigned = [], {}
    for text in given:
        port, _, row = text.partition("=")
        if row and not row.isdigit():
            abort(escape(f"'{text}' is not PORT=ROW: the row is the roster row's number, e.g. {port}=3."))
        ports.append(port)
        if row:
            assigned[port] = int(row)
    return ports, assigned


def summary(boards: list[BoardRun], workshop: Workshop, plan_dir: Path) -> int:
    """The lines after the table; the exit status."""
    devices = workshop.keeper.plan.devices
    done = [d for d in devices if d.state == "provisioned"]
    console.print(f"✓ {len(done)} of {len(devices)} planned devices provisioned.", highlight=False)
    waiting = [d for d in devices if d.state != "provisioned"]
    if waiting:
        console.print(f"  Still to set up: {', '.join(who(d) for d in waiting)}.", highlight=False)
    failed = [board for board in boards if board.failure]
    for board in failed:
        said = f"{who(board.device, start=True)}: {board.failure}" if board.device else board.failure
        err_console.print(f"[red]✗[/red] {escape(said)}", highlight=False)
    if failed or waiting:
        console.print(f"  Run the same command again to continue: {plan_dir}/{PLAN_FILE} keeps every step done.",
                      highlight=False)  # fmt: skip
    return 1 if failed else 0


def run(
    plan_dir: Path = typer.Argument(..., help="The plan folder made by sensing workshop prepare."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
    key: str = typer.Option(..., "--key", envvar="SENSING_KEY", help="A facilitator (or operator) key."),
    answers_dir: Path = typer.Option(
        None, "--answers-dir", file_okay=False,
        help="Residents' answers: <row>.yaml each, all.yaml for everyone. Without it, missing answers are asked.",
    ),  # fmt: skip
    port: list[str] = typer.Option(
        None, "--port", "--ports", "-p",
        help="A board's port, or PORT=ROW for the roster row you choose (repeat). Default: boards as plugged in.",
    ),  # fmt: skip
    watch: Path = typer.Option(
        None, "--watch", file_okay=False,
        help="Watch this folder of links to serial ports (e.g. /dev/serial/by-id) instead of every USB serial port.",
    ),  # fmt: skip
    parallel: int = typer.Option(4, "--parallel", min=1, help="How many boards are set up at once."),
    collected_by: str = typer.Option(None, "--collected-by", help="Who takes the consent: your name or group."),
    micropython: str = typer.Option(
        None, "--micropython", help="The MicroPython a board needs (default: the newest known); newer is kept."
    ),
    manifest: Path = typer.Option(
        MANIFEST, "--manifest", help="The firmware manifest to flash from (default: the toolkit's own)."
    ),
    ca_file: Path = BROKER_CA_OPTION,
    interval: int = typer.Option(60, help="Seconds between readings."),
    wait: float = typer.Option(FIRST_READING_WAIT, help="Seconds to wait for each board's first reading."),
) -> None:
    """Set up boards as they are plugged in: flash, deploy, register and provision several at once."""
    ports, assigned = parse_ports(port or [])

    def say(board: BoardRun, text: str) -> None:
        resident = f" {who(board.device)}" if board.device else ""
        console.print(escape(f"{board.port}{resident}: {text}"), highlight=False)

    workshop = open_workshop(plan_dir, hub, key, say, ca_file, manifest, answers_dir=answers_dir,
                             collected_by=collected_by, assigned=assigned, micropython=micropython,
                             interval=interval, wait=wait)  # fmt: skip
    for row in assigned.values():
        if workshop.keeper.row(row) is None:
            abort(f"There is no row {row} in the plan: see the rows in {plan_dir}/{PLAN_FILE}.")
    source = None if ports else linked_ports(watch) if watch else usb_serial_ports
    if source is not None and not workshop.keeper.remaining():
        console.print("✓ Every planned device is provisioned already.", highlight=False)
        return
    boards = None
    with live_table() as (refresh, live):
        if answers_dir is None:
            workshop.ask = asker(live, workshop.purposes)
        try:
            boards = run_boards(workshop, source, ports, parallel, refresh)
        except KeyboardInterrupt:
            pass
    if boards is None:
        abort(f"Stopped. {plan_dir}/{PLAN_FILE} keeps every step done: run the same command to continue.", 130)
    console.print(table(boards))
    raise typer.Exit(summary(boards, workshop, plan_dir))


def asker(live: Live | None, purposes: dict[str, str]) -> Callable[[PlannedDevice, dict, list[str]], dict]:
    """Ask the facilitator (with the resident) what the roster and answers left open, one board at a time, in
    the words of `sensing device provision`."""
    lock = threading.Lock()

    def say(text: str) -> None:
        console.print(text, highlight=False)

    def ask(device: PlannedDevice, given: dict, missing: list[str]) -> dict:
        with lock:
            if live is not None:
                live.stop()
            try:
                say(f"For {who(device)}, {device.kind} sensor in {device.area}:")
                answers = dict(given)
                if "sharing" in missing:
                    answers["sharing"] = choose(typer.prompt, say, "Who may see the readings?", SHARING, "community")
                if "purposes" in missing:
                    answers["purposes"] = choose_several(typer.prompt, say, "What may the readings be used for?",
                                                         purposes)  # fmt: skip
                if "collected_by" in missing:
                    answers["collected_by"] = typer.prompt("Who is taking this consent (your name or group)?")
                return answers
            finally:
                if live is not None:
                    live.start()

    return ask
