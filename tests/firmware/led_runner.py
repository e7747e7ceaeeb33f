# The status LED of the boards with an RGB LED (a WS2812 on the ESP32-S3 and C3 DevKits), under the MicroPython
# unix port. Only the hardware edge is fake: `machine.Pin` and the `neopixel` module (MicroPython's ESP32
# builds freeze the real one), which records each colour sent to the LED at the board's virtual millisecond.
# The firmware's own board map, board.led_pin, status.Led, power.Power and, in "app", its main loop do the rest.
#
#   MICROPYPATH=<repo> micropython tests/firmware/led_runner.py [scenario ...]
#
# Prints one JSON document: per scenario, the colours written as [ms, [r, g, b]], and what else it checks.
import json
import sys

from firmware import app, board, power
from firmware.status import Led

now = [0]  # the board's virtual time, ms: moved on only by sleep()
written = []
pins = []


def sleep(seconds):
    now[0] += int(seconds * 1000)


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        pins.append([pin, mode])
        self.pin = pin
        self.mode = mode

    def init(self, mode):
        self.mode = mode


class NeoPixel:
    """The `neopixel` module's class: np[i] = (r, g, b) fills its buffer, write() sends it to the LEDs."""

    def __init__(self, pin, n, bpp=3, timing=1):
        if not isinstance(pin, Pin) or pin.mode != Pin.OUT:
            raise TypeError("NeoPixel needs a machine.Pin set as an output")
        self.buf = [(0, 0, 0)] * n

    def __setitem__(self, i, rgb):
        if len(rgb) != 3 or [c for c in rgb if not (isinstance(c, int) and 0 <= c <= 255)]:
            raise ValueError(f"a colour is three integers 0-255, not {rgb}")
        self.buf[i] = rgb

    def write(self):
        written.append([now[0], list(self.buf[0])])


class NeopixelModule:
    NeoPixel = NeoPixel


NEOPIXEL = NeopixelModule()


class Machine:
    Pin = Pin

    def I2C(self, id, sda=None, scl=None, freq=None):
        raise OSError(19)  # nothing wired: the loop runs the emulated sensor


def hardware(neopixel=NEOPIXEL):
    return board.Hardware(Machine(), neopixel=neopixel, board_map="/nonexistent/board.json")


def pixel_led(name):
    hw = hardware()
    return Led(board.led_pin(hw, board.load_map(hw, name)), True)


def result(**extra):
    out = {"written": written[:], "pins": pins[:]}
    out.update(extra)
    del written[:]
    del pins[:]
    now[0] = 0
    return out


def states(name):
    """Each state in turn for two periods of its pattern, played as the loop plays it while it waits."""
    led = pixel_led(name)
    pw = power.Power("none", None, led, sleep=sleep)
    pw.rest(2)  # booting: steady
    for state in ("ok", "sending", "no_network", "sensor_fault", "config_invalid"):
        led.show(state)
        pw.rest(2 * sum([ms for _, ms in led.pattern]) / 1000)
    return result()


def switched_off():
    """The `led` setting off and on again, then light sleep (dark while it waits), then deep sleep."""
    led = pixel_led("ESP32_GENERIC_S3")
    led.show("no_network")
    pw = power.Power("none", None, led, sleep=sleep)
    pw.rest(1.5)
    led.enable(False)
    pw.rest(3)
    led.enable(True)
    pw.rest(1)
    pw.mode = "light"
    pw.rest(3)
    pw.deep_sleep(1, {})
    return result()


def app_loop():
    """The main loop on an S3 whose broker does not answer: it boots, sends, and blinks that it has no
    network while it waits for the next reading."""
    config = app.make_config({"device_id": "air-7kq2m9xp", "secret": "s", "board": "ESP32_GENERIC_S3",
                              "sensors": "emulated", "broker_port": int(sys.argv[2]), "interval": 5,
                              "cycles": 2, "state_dir": sys.argv[1], "ntp_host": "", "backoff_initial": 0,
                              "backoff_jitter": 0, "watchdog_ms": 0})
    logged = []
    left = app.run(config, sleep=sleep, log=logged.append, hardware=hardware())
    return result(left=left, log=logged)


def without_neopixel():
    """A port without the neopixel module (or a build that left it out): no LED, and no crash."""
    hw = hardware(neopixel=None)
    return result(led=board.led_pin(hw, board.load_map(hw, "ESP32_GENERIC_C3")))


def plain_led():
    """A board with a plain LED still gets its pin."""
    hw = hardware()
    pin = board.led_pin(hw, board.load_map(hw, "ESP32_GENERIC"))
    return result(kind=type(pin).__name__)


SCENARIOS = {"s3": lambda: states("ESP32_GENERIC_S3"), "c3": lambda: states("ESP32_GENERIC_C3"),
             "off": switched_off, "app": app_loop, "no_module": without_neopixel, "gpio": plain_led}

out = {}
for name in sys.argv[3:]:
    out[name] = SCENARIOS[name]()
print(json.dumps(out))
