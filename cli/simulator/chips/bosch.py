# Emulated Bosch BME280 and BMP280: a register file with calibration, chip id, reset, forced-mode
# measurements that take 9.3 ms (status bit 3 meanwhile). The raw values for a wanted temperature, pressure
# and humidity are found by bisection on the datasheet's floating-point compensation (BME280 datasheet
# section 8.1), apart from the driver's integer code.
# ruff: noqa: UP031  (percent formatting: the MicroPython common subset, as in firmware/)

from .bus import Chip

# The calibration of the BMP280 datasheet's worked example (its section 3.12), plus typical humidity words.
EXAMPLE_CALIBRATION = {
    "T1": 27504, "T2": 26435, "T3": -1000,
    "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855, "P5": 140, "P6": -7, "P7": 15500, "P8": -14600,
    "P9": 6000,
    "H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30,
}


def _le16(v):
    v &= 0xFFFF
    return [v & 0xFF, v >> 8]


def calibration_bytes(c):
    """(24 bytes at 0x88, the byte at 0xA1, 7 bytes at 0xE1) for a calibration dict."""
    tp = _le16(c["T1"]) + _le16(c["T2"]) + _le16(c["T3"]) + _le16(c["P1"])
    for n in range(2, 10):
        tp += _le16(c["P%d" % n])
    h4 = c["H4"] & 0xFFF
    h5 = c["H5"] & 0xFFF
    h = _le16(c["H2"]) + [c["H3"], h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4, c["H6"] & 0xFF]
    return bytes(tp), c["H1"], bytes(h)


def float_t(c, adc_t):
    var1 = (adc_t / 16384.0 - c["T1"] / 1024.0) * c["T2"]
    var2 = (adc_t / 131072.0 - c["T1"] / 8192.0) * (adc_t / 131072.0 - c["T1"] / 8192.0) * c["T3"]
    return (var1 + var2) / 5120.0, int(var1 + var2)


def float_p(c, adc_p, t_fine):
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * c["P6"] / 32768.0
    var2 = var2 + var1 * c["P5"] * 2.0
    var2 = var2 / 4.0 + c["P4"] * 65536.0
    var1 = (c["P3"] * var1 * var1 / 524288.0 + c["P2"] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c["P1"]
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c["P9"] * p * p / 2147483648.0
    var2 = p * c["P8"] / 32768.0
    return p + (var1 + var2 + c["P7"]) / 16.0


def float_h(c, adc_h, t_fine):
    h = t_fine - 76800.0
    h = (adc_h - (c["H4"] * 64.0 + c["H5"] / 16384.0 * h)) * (
        c["H2"] / 65536.0 * (1.0 + c["H6"] / 67108864.0 * h * (1.0 + c["H3"] / 67108864.0 * h)))
    h = h * (1.0 - c["H1"] * h / 524288.0)
    return min(max(h, 0.0), 100.0)


def _bisect(f, target, lo, hi, rising):
    # The raw value in [lo, hi] whose compensated value is closest to target; f is monotonic.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


def raw_for(c, temperature, pressure_hpa, humidity):
    """(adc_t, adc_p, adc_h) that the float compensation turns into the given values."""
    adc_t = _bisect(lambda a: float_t(c, a)[0], temperature, 0, 0xFFFFF, True)
    t_fine = float_t(c, adc_t)[1]
    adc_p = _bisect(lambda a: float_p(c, a, t_fine), pressure_hpa * 100, 0, 0xFFFFF, False)
    adc_h = _bisect(lambda a: float_h(c, a, t_fine), humidity, 0, 0xFFFF, True)
    return adc_t, adc_p, adc_h


class BME280Chip(Chip):
    CHIP_ID = 0x60
    HUMIDITY = True

    def __init__(self, address=0x76, calibration=None, temperature=21.0, pressure=1013.25, humidity=50.0,
                 raw=None):
        Chip.__init__(self, temperature=temperature, pressure=pressure, humidity=humidity)
        self.address = address
        self.calibration = calibration or EXAMPLE_CALIBRATION
        self.raw = raw  # (adc_t, adc_p, adc_h) to give instead of values, e.g. the datasheet's example
        self.regs = bytearray(256)
        self.pointer = 0
        self.measuring_until = None
        self.updating_until = 0
        self._power_on()

    def _power_on(self):
        regs = self.regs
        for i in range(256):
            regs[i] = 0
        tp, h1, h = calibration_bytes(self.calibration)
        regs[0x88:0x88 + 24] = tp
        if self.HUMIDITY:
            regs[0xA1] = h1
            regs[0xE1:0xE1 + 7] = h
        regs[0xD0] = self.CHIP_ID
        # Data registers after reset: 0x80000 for pressure and temperature, 0x8000 for humidity.
        regs[0xF7:0xFF] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])

    def on_write(self, data):
        self.pointer = data[0]
        for i in range(0, len(data) - 1, 2):  # register address and data pairs
            self._store(data[i], data[i + 1])

    def _store(self, register, value):
        if register == 0xE0 and value == 0xB6:
            self._power_on()
            self.measuring_until = None
            self.updating_until = self.now() + 2
        elif register in (0xF2, 0xF5):
            self.regs[register] = value
        elif register == 0xF4:
            self.regs[register] = value
            if value & 0x03 in (0x01, 0x02):
                self.measuring_until = self.now() + 9.3

    def _finish(self):
        if self.measuring_until is not None and self.now() >= self.measuring_until:
            self.measuring_until = None
            raw = self.raw or raw_for(self.calibration, self.value("temperature"), self.value("pressure"),
                                      self.value("humidity") if self.HUMIDITY else 50.0)
            adc_t, adc_p, adc_h = self.measured(raw)
            regs = self.regs
            regs[0xF7:0xFA] = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4])
            regs[0xFA:0xFD] = bytes([adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4])
            if self.HUMIDITY:
                regs[0xFD:0xFF] = bytes([adc_h >> 8, adc_h & 0xFF])
            self.regs[0xF4] &= 0xFC  # back to sleep mode

    def on_read(self, n):
        self._finish()
        status = 0
        if self.measuring_until is not None:
            status |= 0x08
        if self.now() < self.updating_until:
            status |= 0x01
        self.regs[0xF3] = status
        data = bytes(self.regs[self.pointer:self.pointer + n])
        self.pointer = (self.pointer + n) & 0xFF
        return data


class BMP280Chip(BME280Chip):
    CHIP_ID = 0x58
    HUMIDITY = False
