# The board: its pin map, and what is wired to it (a LoRaWAN modem's UART, the status LED; the sensors on its
# buses are found by start.find_sensors, after this module is let go).
# MicroPython common subset. Everything goes through a Hardware object holding the `machine` and `onewire`
# modules, so the tests hand in fakes that host emulated chips and modems; nothing is touched at import.

import json


BOARD_MAP = "/board.json"   # where `sensing device deploy` puts firmware/boards/<BOARD>.json
MODEM_BAUD = {"wio_e5": 9600, "rak3172": 115200}


class Hardware:
    """machine and onewire (None where the port lacks them), a millisecond sleep for the drivers' waits
    (None: the drivers' own), the modems' clock (None: time's), where the board map is, and the neopixel
    module for an RGB status LED (None: the port's, imported only for a board map that names one)."""

    def __init__(self, machine=None, onewire=None, sleep_ms=None, modem_clock=None, board_map=BOARD_MAP,
                 neopixel=None):
        self.machine = machine
        self.onewire = onewire
        self.sleep_ms = sleep_ms
        self.modem_clock = modem_clock
        self.board_map = board_map
        self.neopixel = neopixel

    def has_buses(self):
        return self.machine is not None and hasattr(self.machine, "I2C")


def on_this_port():
    """The real machine and onewire modules, where the port has them."""
    try:
        import machine
    except ImportError:
        machine = None
    try:
        import onewire
    except ImportError:
        onewire = None
    return Hardware(machine, onewire)


def _read_json(path):
    f = open(path)
    try:
        return json.loads(f.read())
    finally:
        f.close()


def load_map(hardware, name):
    """The board's pin map: /board.json on a board, else firmware/boards/<name>.json beside this file (a
    laptop). Raises ValueError with one sentence."""
    try:
        found = _read_json(hardware.board_map)
    except OSError:
        found = None
    except ValueError:
        raise ValueError("%s is not valid JSON: deploy the firmware again" % hardware.board_map)
    if found is None and name:
        here = __file__[:__file__.rfind("/") + 1] if "/" in __file__ else ""
        try:
            found = _read_json(here + "boards/%s.json" % name)
        except (OSError, ValueError):
            found = None
    if found is None:
        raise ValueError("no board pin map: %s is missing and the config names no board" % hardware.board_map
                         if not name else "no pin map for board %s" % name)
    if name and found.get("board") != name:
        raise ValueError("%s is the pin map of %s, but the config says board %s"
                         % (hardware.board_map, found.get("board"), name))
    return found


def modem_uart(config, hardware, board_map):
    """The UART of the LoRaWAN modem, from the board map. Raises ValueError with one sentence."""
    spec = (board_map.get("uart") or {}).get("modem")
    if not spec:
        raise ValueError("the board %s has no UART for a LoRaWAN modem" % board_map.get("board"))
    m = hardware.machine
    return m.UART(spec["id"], baudrate=MODEM_BAUD[config["lora_modem"]], bits=8, parity=None, stop=1,
                  tx=m.Pin(spec["tx"]), rx=m.Pin(spec["rx"]))


def led_pin(hardware, board_map):
    """The status LED as status.Led drives it: its pin as an output (a plain LED), a pixel.Pixel (an RGB
    LED, a WS2812), or None (no map, a port without pins or without the neopixel module)."""
    spec = (board_map or {}).get("led") or {}
    kind = spec.get("kind")
    m = hardware.machine
    if kind not in ("gpio", "neopixel") or m is None or not hasattr(m, "Pin"):
        return None
    try:
        pin = m.Pin(spec["pin"], m.Pin.OUT)
        return pin if kind == "gpio" else _pixel(hardware, pin)
    except (ImportError, OSError, ValueError, TypeError):
        return None


def _pixel(hardware, pin):
    try:
        from .pixel import Pixel
    except ImportError:  # copied flat onto a board
        from pixel import Pixel
    neopixel = hardware.neopixel
    if neopixel is None:
        import neopixel  # frozen into MicroPython's ESP32 builds
    return Pixel(neopixel.NeoPixel(pin, 1))
