# The sensor driver registry: chip name -> driver, how each is found, and reading them all in one cycle.
# MicroPython common subset. Drivers are imported only when used, so a board holds in RAM just its own; this
# module (finding the chips) is the start's, let go by start.py once the drivers are made: reading them
# every cycle is reading.py's (read_all and Sensors, here under the same names).
#
#   drivers = registry.detect(i2c)                        # I2C chips found by scanning, in preference order
#   drivers += registry.detect_onewire(ow)                # every DS18B20 on the 1-Wire bus
#   drivers.append(registry.make("pms5003", uart))        # UART sensors are named by the config
#   values, faults = registry.read_all(drivers)           # never raises
#
# On a board, the buses come from its pin map (firmware/boards/<BOARD>.json) and the drivers from what answers:
#
#   buses = registry.open_buses(board_map, machine, onewire, uart=config_names_a_uart_sensor)
#   drivers = registry.find_drivers(buses, uart_sensor="pms5003", faults=status_entries)
#
# read_all (reading.py) takes each quantity from the first driver in the list that gives it, so the list
# order is the preference: detect() puts the SHT4x before the SHT3x before the BME280 before the SCD4x (whose
# temperature runs warm from its own heating). A driver that fails is skipped for the cycle and reported in `faults` as
# {"sensor": "sht4x@0x44", "fault": "crc", "message": "one sentence"}.

from . import common
from .reading import Sensors, read_all  # noqa: F401  (reading.py holds what the loop keeps)
from .reading import note as _note

# chip -> (module, class, bus, I2C addresses). Adding a chip is one module and one line here.
CHIPS = {
    "sht4x": ("sht4x", "SHT4x", "i2c", (0x44, 0x45, 0x46)),
    "sht3x": ("sht3x", "SHT3x", "i2c", (0x44, 0x45)),
    "bme280": ("bme280", "BME280", "i2c", (0x76, 0x77)),
    "bmp280": ("bme280", "BMP280", "i2c", (0x76, 0x77)),
    "scd4x": ("scd4x", "SCD4x", "i2c", (0x62,)),
    "sds011": ("sds011", "SDS011", "uart", ()),
    "pms5003": ("pms5003", "PMS5003", "uart", ()),
    "ds18b20": ("ds18b20", "DS18B20", "onewire", ()),
}
# Which chip to try first at a shared address (SHT4x and SHT3x both sit at 0x44), and the read_all order.
PREFERENCE = ("sht4x", "sht3x", "bme280", "bmp280", "scd4x")
_PACKAGE = __name__[:__name__.rfind(".")]


def driver_class(chip):
    """The driver class for a chip name; ValueError with one sentence for a chip we have no driver for."""
    entry = CHIPS.get(chip)
    if entry is None:
        raise ValueError("no driver for sensor '%s' (known: %s)" % (chip, ", ".join(sorted(CHIPS))))
    module = __import__(_PACKAGE + "." + entry[0], None, None, (entry[1],), 0)
    return getattr(module, entry[1])


def make(chip, bus, **options):
    """A driver for `chip` on `bus` (an I2C, UART or OneWire object); options go to the driver."""
    return driver_class(chip)(bus, **options)


def detect(i2c, faults=None, sleep_ms=None):
    """Drivers for the I2C chips that answer on the bus, in PREFERENCE order, each started.

    A chip that answers at a known address but to none of the drivers (or fails to start) is skipped and,
    when a `faults` list is given, reported in it."""
    try:
        present = i2c.scan()
    except OSError as e:
        _note(faults, "i2c", "absent", "the I2C bus cannot be scanned (%s): check SDA, SCL and pull-ups" % e)
        return []
    found = []
    claimed = []
    for chip in PREFERENCE:
        addresses = CHIPS[chip][3]
        for address in present:
            if address not in addresses or address in claimed:
                continue
            cls = driver_class(chip)
            if sleep_ms is None:
                known = cls.identify(i2c, address)
            else:
                known = cls.identify(i2c, address, sleep_ms)
            if not known:
                continue
            claimed.append(address)
            driver = cls(i2c, address, sleep_ms=sleep_ms)
            try:
                driver.start()
            except common.SensorError as e:
                _note(faults, driver.name, e.kind, str(e))
                continue
            found.append(driver)
    for address in present:
        if address in claimed:
            continue
        for chip in PREFERENCE:
            if address in CHIPS[chip][3]:
                _note(faults, "i2c@0x%02x" % address, "unknown",
                      "a chip answers at 0x%02x but is none of %s" % (address, ", ".join(_chips_at(address))))
                break
    return found


def detect_onewire(onewire, sleep_ms=None):
    """A DS18B20 driver for each DS18B20 on the 1-Wire bus (ROM family 0x28, ROM CRC right)."""
    ds18b20 = __import__(_PACKAGE + ".ds18b20", None, None, ("DS18B20",), 0)
    try:
        roms = ds18b20.roms(onewire)
    except OSError:
        return []
    return [ds18b20.DS18B20(onewire, rom, sleep_ms=sleep_ms) for rom in roms]


def open_buses(board, machine, onewire=None, uart=False, faults=None):
    """{"i2c", "uart", "onewire"}: the sensor buses of a board pin map, made with the `machine` module (and
    the `onewire` module) passed in. The sensor UART is opened only when `uart` is true, at 9600 baud, 8N1,
    as SDS011 and PMS5003 speak. A bus that cannot be made is None, with a fault noted."""
    buses = {"i2c": None, "uart": None, "onewire": None}
    spec = board.get("i2c")
    if spec:
        try:
            buses["i2c"] = machine.I2C(spec["id"], sda=machine.Pin(spec["sda"]), scl=machine.Pin(spec["scl"]),
                                       freq=spec.get("freq", 100000))
        except (OSError, ValueError) as e:
            _note(faults, "i2c", "absent", "cannot open I2C %s on SDA %s, SCL %s (%s)"
                  % (spec["id"], spec["sda"], spec["scl"], e))
    spec = (board.get("uart") or {}).get("sensor")
    if uart and spec:
        try:
            buses["uart"] = machine.UART(spec["id"], baudrate=9600, bits=8, parity=None, stop=1,
                                         tx=machine.Pin(spec["tx"]), rx=machine.Pin(spec["rx"]))
        except (OSError, ValueError) as e:
            _note(faults, "uart", "absent", "cannot open UART %s on TX %s, RX %s (%s)"
                  % (spec["id"], spec["tx"], spec["rx"], e))
    elif uart:
        _note(faults, "uart", "absent", "the board %s has no UART for a sensor" % board.get("board"))
    spec = board.get("onewire")
    if spec and onewire is not None:
        try:
            buses["onewire"] = onewire.OneWire(machine.Pin(spec["pin"]))
        except (OSError, ValueError) as e:
            _note(faults, "onewire", "absent", "cannot open 1-Wire on pin %s (%s)" % (spec["pin"], e))
    return buses


def find_drivers(buses, uart_sensor=None, faults=None, sleep_ms=None):
    """Every driver for a board's buses: I2C chips detected, every DS18B20 on the 1-Wire bus, and the UART
    sensor the config names ("sds011" or "pms5003"), in read_all's preference order."""
    drivers = []
    for bus in BUSES:
        drivers += find_on(bus, buses, uart_sensor, faults, sleep_ms)
    return drivers


BUSES = ("i2c", "uart", "onewire")  # find_drivers' order


def find_on(bus, buses, uart_sensor=None, faults=None, sleep_ms=None):
    """The drivers find_drivers() finds on one of the buses ("i2c", "uart" or "onewire")."""
    if buses.get(bus) is None:
        if bus == "uart" and uart_sensor:
            _uart_known(uart_sensor, faults)
        return []
    if bus == "i2c":
        return detect(buses["i2c"], faults, sleep_ms)
    if bus == "onewire":
        return detect_onewire(buses["onewire"], sleep_ms)
    if uart_sensor and _uart_known(uart_sensor, faults):
        return [make(uart_sensor, buses["uart"], sleep_ms=sleep_ms)]
    return []


def _uart_known(chip, faults):
    if CHIPS.get(chip, (0, 0, None))[2] == "uart":
        return True
    _note(faults, chip, "unknown", "'%s' is not a UART sensor (known: %s)"
          % (chip, ", ".join(sorted([c for c in CHIPS if CHIPS[c][2] == "uart"]))))
    return False


def _chips_at(address):
    return [chip for chip in PREFERENCE if address in CHIPS[chip][3]]
