# Reading the sensors found at start, once a cycle: the part of the sensor code that stays in the heap while
# the loop runs. MicroPython common subset. Finding the chips (registry.py) and the quantity registry
# (quantities.py) are the start's: start.py lets them go once the drivers are made, keeping only the valid
# ranges of the quantities the drivers give (limits()).
#
#   sensors = Sensors(drivers, limits(quantities, ["temperature", "humidity"]))
#   values, faults = sensors.read()                       # never raises
#
# Between two readings Sensors keeps what each of this package's drivers knows (its attributes: bus,
# address, calibration, the stuck-value count...), not the driver: the driver is made again from them for the
# reading, and the drivers' modules (common.py and the chips') are let go after it, so their code is in the
# heap only while the sensors are read (docs/firmware.md, Memory). Any other object with read() (a test's
# fake) is kept as it is.
#
# read_all takes each quantity from the first driver in the list that gives it, so the list order is the
# preference (registry.detect's). A driver that fails is skipped for the cycle and reported in `faults` as
# {"sensor": "sht4x@0x44", "fault": "crc", "message": "one sentence"}.

import sys

_PACKAGE = __name__[:__name__.rfind(".") + 1]  # "firmware.sensors." (or "sensors." copied flat)


def _common():
    return __import__(_PACKAGE + "common", None, None, ("SensorError",), 0)


def _quantities():
    try:
        from .. import quantities
    except (ImportError, ValueError):  # copied flat onto a board: sensors/ beside quantities.py
        import quantities
    return quantities


def limits(quantities, names=None):
    """{quantity: (min, max, unit)} of the quantity registry (the module), for `names` (None: all)."""
    table = quantities.QUANTITIES
    out = {}
    for name in table if names is None else names:
        q = table.get(name)
        if q is not None:
            out[name] = (q["min"], q["max"], q["unit"])
    return out


def check(ranges, name, value):
    """quantities.check(name, value) against a table of limits(): None, or one sentence. A quantity not in
    the table is checked by the registry itself (imported for it)."""
    q = ranges.get(name)
    if q is None:
        return _quantities().check(name, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "%s must be a number, not %r" % (name, value)
    if value != value:  # NaN
        return "%s is not a number (NaN)" % name
    if value < q[0] or value > q[1]:
        return "%s %s %s is outside the valid range %s to %s %s" % (name, value, q[2], q[0], q[1], q[2])
    return None


def read_all(drivers, derive=True, ranges=None):
    """(values, faults): one reading from every driver. values {quantity: number}; faults, one entry per
    driver that failed this cycle or gave a value outside its quantity's valid range (`ranges`, a table of
    limits(); None: the quantity registry's). Never raises. With derive, a reading holding temperature,
    humidity and surface_temperature gains the damp quantities."""
    values = {}
    faults = []
    common = _common()
    for driver in drivers:
        read_one(driver, values, faults, ranges or {}, common)
    if derive:
        derive_damp(values)
    return values, faults


def read_one(driver, values, faults, ranges, common):
    """One driver's reading into `values` (a quantity another driver gave first is kept), its fault into
    `faults`. Never raises."""
    name = getattr(driver, "name", None) or repr(driver)
    try:
        got = driver.read()
    except common.SensorError as e:
        note(faults, name, e.kind, str(e))
        return
    except OSError as e:
        note(faults, name, "absent", "%s does not answer (%s)" % (name, e))
        return
    except Exception as e:  # a driver's bug must not stop the loop either
        note(faults, name, "error", "%s failed: %s: %s" % (name, type(e).__name__, e))
        return
    for quantity in got:
        why = check(ranges, quantity, got[quantity])
        if why is not None:
            note(faults, name, "invalid", "%s gave %s" % (name, why))
        elif quantity not in values:
            values[quantity] = got[quantity]


def derive_damp(values):
    if "surface_temperature" in values:  # a damp kit: the only one that loads damp.py
        damp = __import__(_PACKAGE + "damp", None, None, ("derive",), 0)
        values.update(damp.derive(values))


class Sensors:
    """The drivers found at start, read together: read() gives (values, faults) and never raises. Only what
    the drivers know is kept between readings (see the top of this file)."""

    def __init__(self, drivers, ranges=None):
        self.kept = [keep(driver) for driver in drivers]
        self.ranges = ranges or {}

    def read(self):
        for got in self.steps():
            pass
        return got

    def steps(self):
        """read(), a driver at a time: yields None after each driver, once its module is let go (the
        caller collects the garbage there, so no two chips' code is in the heap together), then
        (values, faults)."""
        loaded = drivers_loaded()
        common = _common()
        values = {}
        faults = []
        for i in range(len(self.kept)):
            self._read(i, values, faults, common)
            let_go(loaded, common)
            yield None
        common = None
        derive_damp(values)
        let_go(loaded)
        yield values, faults


    def _read(self, i, values, faults, common):
        # A call of its own: a generator's frame would hold on to the driver (and its module) at the yield.
        driver = remake(self.kept[i], common)
        read_one(driver, values, faults, self.ranges, common)
        self.kept[i] = keep(driver, common.wait_ms)


def keep(driver, wait=None):
    """What Sensors keeps of a driver between readings: (its module, its class, its attributes but the
    default wait, common.wait_ms, given as `wait` or imported), or the object itself when it is not one of
    this package's (what keep() gave already, a test's fake)."""
    cls = type(driver)
    module = getattr(cls, "__module__", "")
    if not module.startswith(_PACKAGE):
        return driver
    if wait is None:
        wait = _common().wait_ms
    own = driver.__dict__
    state = {}
    for k in own:
        if own[k] is not wait:
            state[k] = own[k]
    return (module, cls.__name__, state)


def remake(kept, common):
    """The driver that keep() kept, made again (its module imported if it was let go), without calling its
    __init__: its attributes are the ones it had."""
    if not isinstance(kept, tuple):
        return kept
    module, name, state = kept
    driver = object.__new__(getattr(__import__(module, None, None, (name,), 0), name))
    for k in state:
        setattr(driver, k, state[k])
    if "sleep_ms" not in state:
        driver.sleep_ms = common.wait_ms
    return driver


def drivers_loaded():
    """The names of this package's modules imported now, but this one."""
    return [name for name in sys.modules if name.startswith(_PACKAGE) and name != __name__]


def let_go(loaded, but=None):
    """Under MicroPython, forget this package's modules imported since drivers_loaded() gave `loaded` (but
    the module `but`), so the collector takes back their code; the next reading imports them again. CPython
    keeps its modules."""
    if sys.implementation.name != "micropython":
        return
    package = sys.modules.get(_PACKAGE[:-1])
    for name in drivers_loaded():
        if name not in loaded and sys.modules[name] is not but:
            sys.modules.pop(name)
            if package is not None and hasattr(package, name[len(_PACKAGE):]):
                delattr(package, name[len(_PACKAGE):])


def note(faults, sensor, kind, message):
    if faults is not None:
        faults.append({"sensor": sensor, "fault": kind, "message": message})
