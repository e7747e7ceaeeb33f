"""Running the simulated devices of `sensing simulate`: one MicroPython process per device (the real firmware
on emulated chips, cli/simulator/device.py), its lines read as they come, and a live table of what each sent.

A device prints the firmware's log lines ("sensing: ...") and one JSON line per reading taken and per send.
Stopping sends each process SIGINT, as Ctrl-C would a device on a laptop: the firmware publishes its offline
status, and readings not yet sent stay on its flash for the next run.
"""

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.live import Live
from rich.table import Table

import firmware
from cli.app import abort, console
from cli.monitor import quantity_text
from cli.simulator.kits import KITS
from firmware.quantities import QUANTITIES

DEVICE_SCRIPT = Path(__file__).parent / "simulator" / "device.py"
MICROPYPATH = str(Path(firmware.__file__).parent.parent)  # the folder holding firmware/ and cli/
STOP_WAIT = 10.0  # seconds a device has to say goodbye before it is killed


@dataclass
class Running:
    device: dict
    process: subprocess.Popen
    readings: int = 0
    sent: int = 0
    queued: int = 0
    latest: dict = field(default_factory=dict)
    note: str = ""  # the firmware's last log line since its last send

    def take(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.note = line.removeprefix("sensing: ")
        elif "reading" in event:
            self.readings += 1
            self.queued += 1
            self.latest = event["v"]
        elif "sent" in event:
            self.sent += event["sent"]
            self.queued = event["queued"]
            self.note = ""

    def read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.take(line.rstrip("\n"))

    def state(self) -> str:
        if self.process.poll() is not None:
            return "stopped"
        return self.note or ("sending" if self.sent else "starting")


def start(micropython: str, device: dict, config: Path) -> Running:
    options = {"kit": device["kit"], "seed": device["seed"], "utc_offset": time.localtime().tm_gmtoff}
    process = subprocess.Popen(
        [micropython, str(DEVICE_SCRIPT), str(config), json.dumps(options)],
        env={**os.environ, "MICROPYPATH": MICROPYPATH}, cwd=config.parent,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        start_new_session=True,  # Ctrl-C reaches this command only, which stops each device in turn
    )
    running = Running(device, process)
    threading.Thread(target=running.read, daemon=True).start()
    return running


def latest_text(values: dict) -> str:
    """A reading named quantity by quantity, in the registry's order: "pm2_5 9.1 µg/m³, temperature 14.1 °C"."""
    return ", ".join(f"{name} {quantity_text(name, values[name])}" for name in QUANTITIES if name in values)


def table(fleet: list[Running]) -> Table:
    t = Table(box=None, pad_edge=False)
    for name in ("Device", "Kit", "Readings", "Sent", "Queued", "State"):
        t.add_column(name, justify="right" if name in ("Readings", "Sent", "Queued") else "left")
    t.add_column("Latest reading", no_wrap=True, overflow="ellipsis")  # one line per device, however narrow
    for r in fleet:
        t.add_row(r.device["public_id"], KITS[r.device["kit"]]["chips"], str(r.readings), str(r.sent),
                  str(r.queued), r.state(), latest_text(r.latest))
    return t


def stop(fleet: list[Running]) -> None:
    for r in fleet:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT
    for r in fleet:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait()


def watch(fleet: list[Running], duration: float | None) -> None:
    """Until the duration is up, Ctrl-C, or every device has stopped by itself."""
    end = None if duration is None else time.monotonic() + duration
    live = Live(table(fleet), console=console, refresh_per_second=2, auto_refresh=False) \
        if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while (end is None or time.monotonic() < end) and any(r.process.poll() is None for r in fleet):
            time.sleep(0.25 if end is None else max(0.0, min(0.25, end - time.monotonic())))
            if live is not None:
                live.update(table(fleet), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop(fleet)
        if live is not None:
            live.update(table(fleet), refresh=True)
            live.stop()


def run_fleet(micropython: str, devices: list[dict], configs: list[Path], duration: float | None) -> None:
    fleet = [start(micropython, d, c) for d, c in zip(devices, configs, strict=True)]
    watch(fleet, duration)
    time.sleep(0.2)  # the reader threads take the last lines
    if not console.is_terminal:  # a log: one line per device instead of the live table
        for r in fleet:
            console.print(f"  {r.device['public_id']}  {KITS[r.device['kit']]['chips']}: {r.readings} readings, "
                          f"{r.sent} sent; latest {latest_text(r.latest) or 'none'}", highlight=False)
    taken, sent, queued = (sum(getattr(r, a) for r in fleet) for a in ("readings", "sent", "queued"))
    kept = f"; {queued} kept on their flash for the next run" if queued else ""
    console.print(f"✓ Stopped {len(fleet)} simulated device{'s' if len(fleet) != 1 else ''}: {taken} readings "
                  f"taken, {sent} sent to the hub{kept}.", highlight=False)
    failed = [r for r in fleet if r.process.returncode not in (0, -signal.SIGINT) and r.readings == 0]
    if failed:
        abort(f"The simulated device {failed[0].device['public_id']} stopped without a reading: "
              f"{failed[0].note or 'it printed nothing'}.")
