# Runs the firmware's main loop (firmware/app.py) under the MicroPython unix port on emulated hardware: a
# fake `machine` module whose I2C, UART and 1-Wire buses host the emulated chips of cli/simulator/chips,
# whose modem UART talks to an emulated AT modem (tests/firmware/modems), and whose WDT and LED Pin record
# what the loop does with them. tests/firmware/test_app_*.py run it against a real Mosquitto.
#
#   micropython tests/firmware/app_runner.py config.json '{"kit": "damp", ...}'
#
# Prints one JSON line at the end: the readings left, the log, the LED's levels and the watchdog's feeds
# by virtual time, and the modem's uplinks. With "live": true it prints "feed"/"read" lines as they happen.
import json
import sys
import time

from cli.simulator.chips.bosch import BME280Chip
from cli.simulator.chips.bus import Clock, FakeI2C, FakeOneWire, FakeUART
from cli.simulator.chips.maxim import DS18B20Chip
from cli.simulator.chips.particulate import SDS011Chip
from cli.simulator.chips.sensirion import SHT4xChip
from firmware import app
from firmware.board import Hardware
from firmware.safemode import safe_mode
from tests.firmware.modems.rak3172 import Rak3172Emulator
from tests.firmware.modems.uart import FakeUart, VirtualClock
from tests.firmware.modems.wio_e5 import WioE5Emulator

config_path = sys.argv[1]
options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
clock = Clock()            # the chips' time, moved on by the drivers' waits and the loop's sleep
modem_clock = VirtualClock()
events = {"log": [], "led": [], "feeds": [], "reads": []}
live = options.get("live", False)


def note(kind, value):
    if live:
        print(kind, value)


class Watchdog:
    def __init__(self, timeout=0):
        self.timeout = timeout

    def feed(self):
        events["feeds"].append(clock.now_ms)
        note("feed", time.ticks_ms())


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        self.pin = pin
        self.mode = mode

    def value(self, level=None):
        if level is not None and self.mode == Pin.OUT:
            events["led"].append([int(clock.now_ms), level])


class Stalling:
    """Wraps an I2C bus: from the `after`th transaction on, every call hangs, as a wedged bus can."""

    def __init__(self, bus, after):
        self.bus = bus
        self.after = after
        self.calls = 0

    def __getattr__(self, name):
        method = getattr(self.bus, name)

        def call(*args):
            self.calls += 1
            if self.calls > self.after:
                note("stall", time.ticks_ms())
                while True:
                    time.sleep(0.01)
            return method(*args)
        return call


chips = {"i2c": [], "onewire": [], "uart": None}
kit = options.get("kit", "damp")
if kit == "damp":
    chips["i2c"].append(SHT4xChip(temperature=20.0, humidity=60.0))
    chips["onewire"].append(DS18B20Chip(surface_temperature=14.0))
elif kit == "air":
    chips["i2c"].append(BME280Chip(temperature=21.5, pressure=1008.4, humidity=48.0))
    chips["uart"] = SDS011Chip(pm2_5=12.3, pm10=20.1)
i2c = FakeI2C(chips["i2c"], clock)
ow = FakeOneWire(chips["onewire"], clock)
sensor_uart = FakeUART(chips["uart"], clock) if chips["uart"] is not None else None
emulator = None
if options.get("modem"):
    emulator = {"wio_e5": WioE5Emulator, "rak3172": Rak3172Emulator}[options["modem"]](modem_clock)
    for key in options.get("modem_script", {}):
        setattr(emulator, key, options["modem_script"][key])
    emulator.downlinks = [(port, bytes.fromhex(data)) for port, data in options.get("downlinks", [])]
bus = Stalling(i2c, options["stall_after"]) if "stall_after" in options else i2c


def leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def seconds_of(t):
    # Unix seconds of an RTC tuple, counted day by day: not the firmware's own arithmetic.
    days = sum(366 if leap(y) else 365 for y in range(1970, t[0]))
    days += sum([31, 29 if leap(t[0]) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30][:t[1] - 1]) + t[2] - 1
    return days * 86400 + t[4] * 3600 + t[5] * 60 + t[6]


class RTC:
    """machine.RTC, with "rtc" in the options (the date it reads at the start, as an 8-tuple): it runs on
    the board's virtual time, and each datetime() it is set to is recorded in "rtc_set"."""
    base = None  # (Unix seconds, virtual ms then)

    def datetime(self, t=None):
        if t is not None:
            events["rtc_set"].append(list(t))
            RTC.base = (seconds_of(t), clock.now_ms)
            return None
        if RTC.base is None:
            RTC.base = (seconds_of(options["rtc"]), clock.now_ms)
        now = RTC.base[0] + int(clock.now_ms - RTC.base[1]) // 1000
        g = time.gmtime(now)  # the unix port counts from 1970
        return (g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0)


class Machine:
    Pin = Pin
    WDT = Watchdog

    def I2C(self, id, sda=None, scl=None, freq=None):
        return bus

    def UART(self, id, **kw):
        if id == 1:  # ESP32_GENERIC's modem UART
            return FakeUart(emulator)
        return sensor_uart


def deepsleep(ms):
    # A board would stop here and start again from main.py after `ms`: print what happened, then hang
    # until the test ends the process (so nothing after this line runs, as on a board).
    events["deepsleep"] = ms
    print(json.dumps(events))
    print("asleep")
    while True:
        time.sleep(0.01)


class OneWireModule:
    def OneWire(self, pin):
        return ow


def sleep(seconds):
    clock.sleep_ms(int(seconds * 1000))
    modem_clock.sleep_ms(int(seconds * 1000))
    time.sleep(options.get("real_sleep", 0))


def log(line):
    events["log"].append(line)
    note("log", line)


machine = Machine()
if "rtc" in options:
    Machine.RTC = RTC
    events["rtc_set"] = []
if options.get("deepsleep"):
    machine.deepsleep = deepsleep
hardware = Hardware(machine, OneWireModule(), sleep_ms=clock.sleep_ms, modem_clock=modem_clock,
                    board_map="/nonexistent/board.json")
if options.get("safe_mode"):
    from firmware import config as settings
    try:
        settings.load(config_path)
        raise SystemExit("the config is valid")
    except settings.ConfigError as e:
        fixed = safe_mode(config_path, e, hardware, options["safe_mode"], log=log, sleep=sleep)
    events["fixed"] = fixed
    config = None  # main.py would load the fixed config now and run
else:
    config = app.load_config(config_path)
chip_faults = options.get("chip_faults", {})
if config is not None:
    if chip_faults:
        original = app.Device.measure
        cycle = [0]

        def measure(self, seqs, sensors):
            # Unplug or damage a chip for the cycles the test names: {"cycle": {"sht4x": "absent"}}
            for name, fault in chip_faults.get(str(cycle[0]), {}).items():
                target = {"sht4x": i2c.chips.get(0x44), "ds18b20": (chips["onewire"] or [None])[0]}[name]
                if fault == "absent":
                    target.present = False
                elif fault == "back":
                    target.present = True
                elif fault == "crc":
                    target.corrupt = 1
            cycle[0] += 1
            return original(self, seqs, sensors)
        app.Device.measure = measure
    left = app.run(config, sleep=sleep, log=log, hardware=hardware, config_file=config_path)
    events["left"] = left
if emulator is not None:
    events["uplinks"] = [list(u) for u in emulator.uplinks]
    events["modem_commands"] = emulator.received
print(json.dumps(events))
