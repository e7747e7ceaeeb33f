# Emulated Sensirion chips: SHT3x, SHT4x, SCD4x. Answers are 16-bit words, each followed by its CRC-8
# (polynomial 0x31, init 0xFF), computed here by polynomial division, apart from the driver's bitwise loop.

from .bus import EIO, Chip


def crc8(word):
    # The remainder of (word with its first byte inverted, i.e. init 0xFF) * x^8 divided by x^8+x^5+x^4+1.
    v = (word ^ 0xFF00) << 8
    for bit in range(23, 7, -1):
        if v & (1 << bit):
            v ^= 0x131 << (bit - 8)
    return v & 0xFF


def words(values, corrupt=False):
    out = bytearray()
    for i in range(len(values)):
        w = values[i] & 0xFFFF
        crc = crc8(w)
        if corrupt and i == 0:
            crc ^= 0x01
        out += bytes([w >> 8, w & 0xFF, crc])
    return bytes(out)


def _clip16(x):
    return min(max(int(round(x)), 0), 65535)


class SensirionChip(Chip):
    def __init__(self, address, **values):
        Chip.__init__(self, **values)
        self.address = address
        self.pending = None
        self.ready_at = 0

    def answer(self, raw, delay_ms):
        self.pending = raw
        self.ready_at = self.now() + delay_ms

    def on_read(self, n):
        if self.pending is None or self.now() < self.ready_at:
            raise OSError(EIO)  # NACK of the read header: nothing to give, or still measuring
        data = words(self.pending, self.take_corrupt())[:n]
        self.pending = None
        return data


class SHT4xChip(SensirionChip):
    """SHT4x: one-byte commands. 0xFD measures in 8.3 ms at most; 0x89 serial number; 0x94 soft reset."""

    def __init__(self, address=0x44, serial=0x0FE1D2C3, temperature=21.0, humidity=50.0):
        SensirionChip.__init__(self, address, temperature=temperature, humidity=humidity)
        self.serial = serial

    def on_write(self, data):
        if data == b"\xfd":
            t = _clip16((self.value("temperature") + 45) * 65535 / 175)
            rh = _clip16((self.value("humidity") + 6) * 65535 / 125)
            self.answer(self.measured([t, rh]), 8.3)
        elif data == b"\x89":
            self.answer([self.serial >> 16, self.serial & 0xFFFF], 0.2)
        elif data == b"\x94":
            self.pending = None
        else:
            raise OSError(EIO)  # not an SHT4x command: NACK


class SHT3xChip(SensirionChip):
    """SHT3x: two-byte commands. 0x2400 single shot, high repeatability, no clock stretching: 15.5 ms at most;
    0xF32D status register; 0x30A2 soft reset. A one-byte write is acknowledged and means nothing."""

    def __init__(self, address=0x44, temperature=21.0, humidity=50.0):
        SensirionChip.__init__(self, address, temperature=temperature, humidity=humidity)
        self.status = 0x8010  # alert pending and reset detected: the value after power on

    def on_write(self, data):
        if len(data) == 1:
            self.pending = None
            return
        command = (data[0] << 8) | data[1]
        if command == 0x2400:
            t = _clip16((self.value("temperature") + 45) * 65535 / 175)
            rh = _clip16(self.value("humidity") * 65535 / 100)
            self.answer(self.measured([t, rh]), 15.5)
        elif command == 0xF32D:
            self.answer([self.status], 0)
        elif command == 0x30A2:
            self.pending = None
        else:
            raise OSError(EIO)


class SCD4xChip(SensirionChip):
    """SCD4x at 0x62: periodic measurement every 5 s after start_periodic_measurement; commands that are not
    allowed in the current mode, or come within 500 ms of stop_periodic_measurement, are NACKed."""

    def __init__(self, address=0x62, co2=600, temperature=22.0, humidity=45.0, periodic=False):
        SensirionChip.__init__(self, address, co2=co2, temperature=temperature, humidity=humidity)
        self.periodic = periodic
        self.started_at = 0
        self.taken = 0
        self.busy_until = 0

    def _available(self):
        if not self.periodic:
            return 0
        return int((self.now() - self.started_at) // 5000)

    def on_write(self, data):
        if self.now() < self.busy_until or len(data) != 2:
            raise OSError(EIO)
        command = (data[0] << 8) | data[1]
        if command == 0x21B1:
            if self.periodic:
                raise OSError(EIO)
            self.periodic = True
            self.started_at = self.now()
            self.taken = 0
        elif command == 0x3F86:
            self.periodic = False
            self.busy_until = self.now() + 500
        elif command == 0xE4B8:
            ready = self._available() > self.taken
            self.answer([0x8006 if ready else 0x8000], 1)
        elif command == 0xEC05:
            if self._available() > self.taken:
                self.taken = self._available()
                co2 = int(round(self.value("co2")))
                t = _clip16((self.value("temperature") + 45) * 65536 / 175)
                rh = _clip16(self.value("humidity") * 65536 / 100)
                self.answer(self.measured([co2, t, rh]), 1)
            else:
                self.pending = None  # nothing new: the read is NACKed
        elif command == 0x3682:
            if self.periodic:
                raise OSError(EIO)
            self.answer([0xF896, 0x9F07, 0x3BB4], 1)
        else:
            raise OSError(EIO)
