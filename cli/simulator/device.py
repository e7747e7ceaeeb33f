# One simulated device: the real firmware (firmware/main.py, as a board runs it at boot) on a fake
# `machine` module whose buses host the emulated chips of a kit (kits.py), following a plausible series by
# the wall clock. Run by `sensing simulate`, one MicroPython process per device:
#
#   MICROPYPATH=<the folder holding cli/ and firmware/> micropython cli/simulator/device.py config.json \
#       '{"kit": "damp", "seed": 3, "utc_offset": 3600}'
#
# Besides the firmware's own log lines ("sensing: ..."), it prints one JSON line per reading taken
# ({"reading": seq, "v": {...}}) and per send ({"sent": n, "queued": n}). SIGINT stops it as a clean stop
# would: the firmware says goodbye on its status topic and keeps what it has not sent.
import json
import sys
import time

from cli.simulator.chips.bus import FakeI2C, FakeOneWire, FakeUART
from cli.simulator.kits import build
from firmware import app
from firmware import main as firmware
from firmware.board import Hardware


class WallClock:
    """The chips' time: local wall-clock milliseconds, so the series' day follows the real one. It moves on
    by the monotonic ticks, as a chip's own timing does: a wall clock that is set back mid-measurement
    would make a chip refuse an answer it owes."""

    def __init__(self, utc_offset_s):
        self.ms = time.time_ns() // 1000000 + int(utc_offset_s * 1000)
        self.ticks = time.ticks_ms()

    @property
    def now_ms(self):
        ticks = time.ticks_ms()
        self.ms += time.ticks_diff(ticks, self.ticks)
        self.ticks = ticks
        return self.ms

    def sleep_ms(self, ms):
        time.sleep_ms(int(ms))


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        self.pin = pin

    def value(self, level=None):
        return 0  # the status LED: nobody looks at it


class Machine:
    """The parts of `machine` the firmware uses on a board with its sensors: no watchdog, no deep sleep."""

    Pin = Pin

    def __init__(self, i2c, uart):
        self.i2c = i2c
        self.uart = uart

    def I2C(self, id, sda=None, scl=None, freq=None):
        return self.i2c

    def UART(self, id, **kw):
        if self.uart is None:
            raise OSError(19)  # no particulate sensor wired to this kit's UART
        return self.uart


class OneWireModule:
    def __init__(self, bus):
        self.bus = bus

    def OneWire(self, pin):
        return self.bus


def emit(event):
    print(json.dumps(event))


def report_readings_and_sends():
    keep, send = app.Device.keep, app.Uplink.send

    def keep_and_tell(self, seq, values):
        keep(self, seq, values)
        emit({"reading": seq, "v": values})

    def send_and_tell(self, buf, clock):
        before = len(buf)
        try:
            return send(self, buf, clock)
        finally:
            if before != len(buf):
                emit({"sent": before - len(buf), "queued": len(buf)})

    app.Device.keep = keep_and_tell
    app.Uplink.send = send_and_tell


def main():
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    clock = WallClock(options.get("utc_offset", 0))
    i2c_chips, onewire_chips, uart_chip = build(options["kit"], clock, options.get("seed", 1))
    uart = FakeUART(uart_chip, clock) if uart_chip is not None else None
    machine = Machine(FakeI2C(i2c_chips, clock), uart)
    hardware = Hardware(machine, OneWireModule(FakeOneWire(onewire_chips, clock)),
                        board_map=options.get("board_map", "/nonexistent/board.json"))
    report_readings_and_sends()
    try:
        return firmware.main(hardware)
    except KeyboardInterrupt:
        return 0


sys.exit(main())
