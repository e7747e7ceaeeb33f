# What every sensor driver shares: its errors, waiting, bus access that turns a NACK into a driver error, and
# the stuck-value check. What only some share is in their own modules, so that reading one chip loads no other
# chip's code (reading.py loads a driver's modules for its reading and lets them go after it): the Sensirion
# chips' CRC and words in sensirion.py, the Dallas CRC in ds18b20.py, register access in bme280.py.
# MicroPython common subset. Nothing here touches hardware: the bus, UART or 1-Wire object is passed in.

import time


class SensorError(Exception):
    """A reading that could not be taken. str(error) is one sentence; `kind` names the fault for the status."""
    kind = "error"


class NoAnswer(SensorError):
    kind = "absent"      # the chip did not answer: unplugged, wrong address, broken wire


class CRCError(SensorError):
    kind = "crc"         # the bytes arrived damaged


class StuckValue(SensorError):
    kind = "stuck"       # the same raw value too many times in a row: a frozen chip, not a still room


class NotReady(SensorError):
    kind = "not_ready"   # the chip answered but has no measurement to give


class BadValue(SensorError):
    kind = "invalid"     # the chip answered with a value it cannot have measured


def wait_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:  # CPython
        time.sleep(ms / 1000)


def i2c_write(i2c, address, data, who):
    try:
        i2c.writeto(address, data)
    except OSError as e:
        raise NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, errno_text(e)))


def errno_text(e):
    code = e.args[0] if e.args else None
    names = {5: "EIO", 19: "ENODEV", 110: "ETIMEDOUT", 116: "ETIMEDOUT"}
    if code in names:
        return "%s, errno %d" % (names[code], code)
    return "errno %s" % (code,)


class Driver:
    """The base of every driver. Subclasses set NAME and QUANTITIES and write read().

    sleep_ms is injectable so tests can run a chip's timing on a simulated clock; stuck_after is how many
    identical raw readings in a row count as a frozen chip (STUCK_AFTER by default, per chip, since a wall
    thermometer may honestly repeat itself far longer than a humidity sensor)."""

    NAME = "sensor"
    QUANTITIES = ()
    STUCK_AFTER = 10

    def __init__(self, sleep_ms=None, stuck_after=None):
        self.sleep_ms = sleep_ms or wait_ms
        self.stuck_after = stuck_after or self.STUCK_AFTER
        self._last_raw = None
        self._repeats = 0
        self.name = self.NAME

    def start(self):
        """Put the chip in the mode read() expects. Called once after detection; read() calls it if needed."""

    def read(self):
        raise NotImplementedError

    def _fresh(self, raw):
        """Count repeats of a raw value; raise StuckValue once it has come stuck_after times in a row."""
        if raw == self._last_raw:
            self._repeats += 1
        else:
            self._last_raw = raw
            self._repeats = 1
        if self._repeats >= self.stuck_after:
            raise StuckValue("%s has given the same raw value %d times in a row" % (self.name, self._repeats))

    def __repr__(self):
        return "<%s>" % self.name


class I2CDriver(Driver):
    """A driver on I2C. Its commands and reads go through buffers made once (a reading allocates no bytes for
    them): what _read() returns is overwritten by the next read of the same length."""
    ADDRESSES = ()

    def __init__(self, i2c, address=None, sleep_ms=None, stuck_after=None):
        Driver.__init__(self, sleep_ms, stuck_after)
        self.i2c = i2c
        self.address = self.ADDRESSES[0] if address is None else address
        self.name = "%s@0x%02x" % (self.NAME, self.address)
        self._out = bytearray(2)
        self._in = {}  # length -> bytearray

    def _write(self, data):
        i2c_write(self.i2c, self.address, data, self.NAME)

    def _read(self, n):
        buf = self._in.get(n)
        if buf is None:
            buf = self._in[n] = bytearray(n)
        try:
            self.i2c.readfrom_into(self.address, buf)
        except OSError as e:
            raise NoAnswer("%s at 0x%02x does not answer (%s)" % (self.NAME, self.address, errno_text(e)))
        return buf

    def _command(self, code):
        out = self._out
        out[0] = code >> 8
        out[1] = code & 0xFF
        self._write(out)


def hundredths(x):
    # Round to 0.01 for the wire: the chips resolve about that, and short JSON costs less airtime.
    return round(x * 100) / 100
