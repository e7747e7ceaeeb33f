# Bosch BME280 (temperature, humidity, pressure) and BMP280 (temperature, pressure), on I2C at 0x76 (SDO low)
# or 0x77 (SDO high). From the BME280 datasheet (rev 1.6) and the BMP280 datasheet (rev 1.23):
#   0xD0 id            0x60 on a BME280; 0x56/0x57 (samples) or 0x58 on a BMP280
#   0xE0 reset         writing 0xB6 resets; the chip copies its calibration (status bit 0) for about 2 ms
#   0x88..0xA1         calibration dig_T1..dig_P9 (little-endian words), dig_H1 at 0xA1
#   0xE1..0xE7         calibration dig_H2..dig_H6; dig_H4 and dig_H5 are signed 12-bit, sharing 0xE5
#   0xF2 ctrl_hum      osrs_h in bits 2:0; takes effect at the next write of ctrl_meas
#   0xF3 status        bit 3 set while measuring
#   0xF4 ctrl_meas     osrs_t bits 7:5, osrs_p bits 4:2, mode bits 1:0 (01 = forced: one measurement, then sleep)
#   0xF7..0xFE         press (20 bit), temp (20 bit), hum (16 bit), most significant byte first
# Forced mode with 1x oversampling of each takes at most 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms.
# The compensation below is the datasheet's integer code (rev 1.1): 32-bit for T and H, 64-bit for P.
# Python ints never overflow, and >> floors like the C code's arithmetic shift; the one division truncates
# toward zero as C's does (_div).

from . import common

REG_ID = 0xD0
REG_RESET = 0xE0
REG_CALIB_TP = 0x88
REG_CALIB_H1 = 0xA1
REG_CALIB_H = 0xE1
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7
RESET = 0xB6
FORCED_X1 = (1 << 5) | (1 << 2) | 0b01  # osrs_t x1, osrs_p x1, forced mode
MEASURE_MS = 10
SKIPPED_20 = 0x80000  # what the data registers hold for a measurement that did not run


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = _u16(b, i)
    return v - 65536 if v & 0x8000 else v


def _s12(v):
    return v - 4096 if v & 0x800 else v


def _div(a, b):
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def read_register(i2c, address, register, n, who):
    try:
        return i2c.readfrom_mem(address, register, n)
    except OSError as e:
        raise common.NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, common.errno_text(e)))


def write_register(i2c, address, register, value, who):
    try:
        i2c.writeto_mem(address, register, bytes([value]))
    except OSError as e:
        raise common.NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, common.errno_text(e)))


def parse_calibration(tp, h1=None, h=None):
    """The trimming parameters from the 24 bytes at 0x88 and, for a BME280, 0xA1 and the 7 bytes at 0xE1."""
    c = {"T1": _u16(tp, 0), "T2": _s16(tp, 2), "T3": _s16(tp, 4), "P1": _u16(tp, 6)}
    for n in range(2, 10):
        c["P%d" % n] = _s16(tp, 8 + 2 * (n - 2))
    if h is not None:
        c["H1"] = h1
        c["H2"] = _s16(h, 0)
        c["H3"] = h[2]
        c["H4"] = _s12((h[3] << 4) | (h[4] & 0x0F))
        c["H5"] = _s12((h[5] << 4) | (h[4] >> 4))
        c["H6"] = h[6] - 256 if h[6] & 0x80 else h[6]
    return c


def compensate_t(c, adc_t):
    """(temperature in 0.01 °C, t_fine)."""
    var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
    d = (adc_t >> 4) - c["T1"]
    var2 = (((d * d) >> 12) * c["T3"]) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(c, adc_p, t_fine):
    """Pressure in Pa as Q24.8 (divide by 256), or 0 when the calibration would divide by zero."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 17)
    var2 = var2 + (c["P4"] << 35)
    var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
    var1 = (((1 << 47) + var1) * c["P1"]) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _div(((p << 31) - var2) * 3125, var1)
    var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c["P8"] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c["P7"] << 4)


def compensate_h(c, adc_h, t_fine):
    """Relative humidity in %RH as Q22.10 (divide by 1024)."""
    v = t_fine - 76800
    v = (((((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15)
         * (((((((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10) + 2097152) * c["H2"] + 8192) >> 14))
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


class BME280(common.I2CDriver):
    NAME = "bme280"
    ADDRESSES = (0x76, 0x77)
    CHIP_IDS = (0x60,)
    QUANTITIES = ("temperature", "humidity", "pressure")
    HUMIDITY = True
    STUCK_AFTER = 10

    def __init__(self, i2c, address=None, sleep_ms=None, stuck_after=None):
        common.I2CDriver.__init__(self, i2c, address, sleep_ms, stuck_after)
        self.calibration = None

    @classmethod
    def identify(cls, i2c, address, sleep_ms=None):
        """True when the chip id register holds one of this chip's ids."""
        try:
            return read_register(i2c, address, REG_ID, 1, cls.NAME)[0] in cls.CHIP_IDS
        except common.SensorError:
            return False

    def _reg(self, register, n):
        return read_register(self.i2c, self.address, register, n, self.NAME)

    def _set(self, register, value):
        write_register(self.i2c, self.address, register, value, self.NAME)

    def start(self):
        chip_id = self._reg(REG_ID, 1)[0]
        if chip_id not in self.CHIP_IDS:
            raise common.BadValue("%s answers with chip id 0x%02x, not a %s" % (self.name, chip_id, self.NAME))
        self._set(REG_RESET, RESET)
        self.sleep_ms(3)
        for _ in range(10):
            if not self._reg(REG_STATUS, 1)[0] & 0x01:
                break
            self.sleep_ms(1)
        tp = self._reg(REG_CALIB_TP, 24)
        if self.HUMIDITY:
            c = parse_calibration(tp, self._reg(REG_CALIB_H1, 1)[0], self._reg(REG_CALIB_H, 7))
        else:
            c = parse_calibration(tp)
        if c["T1"] == 0 or c["P1"] == 0:
            raise common.BadValue("%s has no calibration data (dig_T1 or dig_P1 is 0)" % self.name)
        self._set(REG_CONFIG, 0)  # no IIR filter: each forced reading stands alone
        if self.HUMIDITY:
            self._set(REG_CTRL_HUM, 0x01)  # osrs_h x1
        self.calibration = c

    def read(self):
        if self.calibration is None:
            self.start()
        self._set(REG_CTRL_MEAS, FORCED_X1)
        self.sleep_ms(MEASURE_MS)
        for _ in range(10):
            if not self._reg(REG_STATUS, 1)[0] & 0x08:
                break
            self.sleep_ms(2)
        d = self._reg(REG_DATA, 8 if self.HUMIDITY else 6)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        if adc_t == SKIPPED_20 or adc_p == SKIPPED_20:
            raise common.NotReady("%s gave no measurement (its data registers hold the reset value)" % self.name)
        adc_h = ((d[6] << 8) | d[7]) if self.HUMIDITY else None
        self._fresh((adc_t, adc_p, adc_h))
        c = self.calibration
        t, t_fine = compensate_t(c, adc_t)
        p = compensate_p(c, adc_p, t_fine)
        if p == 0:
            raise common.BadValue("%s calibration data gives no pressure" % self.name)
        out = {"temperature": t / 100, "pressure": round(p / 256) / 100}
        if self.HUMIDITY:
            out["humidity"] = common.hundredths(compensate_h(c, adc_h, t_fine) / 1024)
        return out


class BMP280(BME280):
    NAME = "bmp280"
    CHIP_IDS = (0x56, 0x57, 0x58)
    QUANTITIES = ("temperature", "pressure")
    HUMIDITY = False
