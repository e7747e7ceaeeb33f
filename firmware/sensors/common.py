# What every sensor driver shares: its errors, the two CRC-8 variants of the datasheets, waiting, bus access
# that turns a NACK into a driver error, and the stuck-value check.
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


def crc8_sensirion(data, start=0, end=None):
    """CRC-8 of Sensirion's chips: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final
    XOR, over the two bytes of a word (data[start:end], read in place). CRC(0xBEEF) = 0x92."""
    crc = 0xFF
    for i in range(start, len(data) if end is None else end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def crc8_dallas(data, end=None):
    """CRC-8 of Dallas/Maxim 1-Wire chips: polynomial x^8 + x^5 + x^4 + 1 shifted out least significant bit
    first (0x31 reflected is 0x8C), init 0, over data[:end] (read in place). Over a ROM code or scratchpad
    including its CRC byte it gives 0."""
    crc = 0
    for i in range(len(data) if end is None else end):
        byte = data[i]
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def sensirion_words(data, who):
    """Split a Sensirion answer (word MSB, word LSB, CRC, ...) into its 16-bit words, checking each CRC."""
    words = []
    for i in range(0, len(data) - 2, 3):
        crc = crc8_sensirion(data, i, i + 2)
        if crc != data[i + 2]:
            raise CRCError("%s sent word %d with a bad CRC (0x%02x, expected 0x%02x)"
                           % (who, i // 3, data[i + 2], crc))
        words.append((data[i] << 8) | data[i + 1])
    return words


def i2c_write(i2c, address, data, who):
    try:
        i2c.writeto(address, data)
    except OSError as e:
        raise NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, _errno(e)))


def i2c_read(i2c, address, n, who):
    buf = bytearray(n)
    try:
        i2c.readfrom_into(address, buf)
    except OSError as e:
        raise NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, _errno(e)))
    return buf


def command_bytes(code):
    """A Sensirion 16-bit command, most significant byte first."""
    return bytes([code >> 8, code & 0xFF])


def sensirion_answers(i2c, address, command, wait, n, who, sleep_ms):
    """True when the chip at `address` answers `command` (bytes), `wait` ms later, with `n` bytes of words whose
    CRCs are right: how the Sensirion chips are told apart on a bus."""
    try:
        i2c_write(i2c, address, command, who)
        sleep_ms(wait)
        sensirion_words(i2c_read(i2c, address, n, who), who)
    except SensorError:
        return False
    return True


def i2c_read_register(i2c, address, register, n, who):
    try:
        return i2c.readfrom_mem(address, register, n)
    except OSError as e:
        raise NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, _errno(e)))


def i2c_write_register(i2c, address, register, value, who):
    try:
        i2c.writeto_mem(address, register, bytes([value]))
    except OSError as e:
        raise NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, _errno(e)))


def _errno(e):
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
            raise NoAnswer("%s at 0x%02x does not answer (%s)" % (self.NAME, self.address, _errno(e)))
        return buf

    def _command(self, code):
        out = self._out
        out[0] = code >> 8
        out[1] = code & 0xFF
        self._write(out)


def hundredths(x):
    # Round to 0.01 for the wire: the chips resolve about that, and short JSON costs less airtime.
    return round(x * 100) / 100
