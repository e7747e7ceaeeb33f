# Reading the sensors found at start, once a cycle: the part of the sensor code, bar the drivers themselves,
# that stays in the heap while the loop runs. MicroPython common subset. Finding the chips (registry.py) and
# the quantity registry (quantities.py) are the start's: start.py lets them go once the drivers are made,
# keeping only the valid ranges of the quantities the drivers give (limits()).
#
#   sensors = Sensors(drivers, limits(quantities, ["temperature", "humidity"]))
#   values, faults = sensors.read()                       # never raises
#
# read_all takes each quantity from the first driver in the list that gives it, so the list order is the
# preference (registry.detect's). A driver that fails is skipped for the cycle and reported in `faults` as
# {"sensor": "sht4x@0x44", "fault": "crc", "message": "one sentence"}.

from . import common


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
    if ranges is None:
        ranges = {}
    for driver in drivers:
        name = getattr(driver, "name", None) or repr(driver)
        try:
            got = driver.read()
        except common.SensorError as e:
            note(faults, name, e.kind, str(e))
            continue
        except OSError as e:
            note(faults, name, "absent", "%s does not answer (%s)" % (name, e))
            continue
        except Exception as e:  # a driver's bug must not stop the loop either
            note(faults, name, "error", "%s failed: %s: %s" % (name, type(e).__name__, e))
            continue
        for quantity in got:
            why = check(ranges, quantity, got[quantity])
            if why is not None:
                note(faults, name, "invalid", "%s gave %s" % (name, why))
            elif quantity not in values:
                values[quantity] = got[quantity]
    if derive and "surface_temperature" in values:  # a damp kit: the only one that loads damp.py
        from . import damp
        values.update(damp.derive(values))
    return values, faults


class Sensors:
    """The drivers found at start, read together: read() gives (values, faults) and never raises."""

    def __init__(self, drivers, ranges=None):
        self.drivers = drivers
        self.ranges = ranges

    def read(self):
        return read_all(self.drivers, True, self.ranges)


def note(faults, sensor, kind, message):
    if faults is not None:
        faults.append({"sensor": sensor, "fault": kind, "message": message})
