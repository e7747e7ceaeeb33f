# Sensirion SHT4x (SHT40, SHT41, SHT43, SHT45) temperature and humidity, on I2C at 0x44 (the -A parts; -B at
# 0x45, -C at 0x46). From the SHT4x datasheet: command 0xFD measures T and RH with high precision (high
# repeatability) in at most 8.3 ms; the answer is six bytes, temperature word, CRC, humidity word, CRC
# (CRC-8 0x31, init 0xFF). Conversions:
#   T = -45 + 175 * S_T / (2^16 - 1)  [°C]      RH = -6 + 125 * S_RH / (2^16 - 1)  [%], cropped to 0..100
# Command 0x89 reads the serial number (two words with CRCs): detection uses it to tell an SHT4x from an SHT3x,
# whose commands are two bytes long.

from . import common, sensirion

MEASURE_HIGH = 0xFD
READ_SERIAL = 0x89
MEASURE_MS = 9
MEASURE = bytes([MEASURE_HIGH])


class SHT4x(common.I2CDriver):
    NAME = "sht4x"
    ADDRESSES = (0x44, 0x45, 0x46)
    QUANTITIES = ("temperature", "humidity")
    STUCK_AFTER = 10

    @staticmethod
    def identify(i2c, address, sleep_ms=common.wait_ms):
        """True when the chip at `address` answers the SHT4x serial-number command with valid CRCs."""
        return sensirion.answers(i2c, address, bytes([READ_SERIAL]), 1, 6, "sht4x", sleep_ms)

    def read(self):
        self._write(MEASURE)
        self.sleep_ms(MEASURE_MS)
        t_raw, rh_raw = sensirion.words(self._read(6), self.name)
        self._fresh((t_raw, rh_raw))
        rh = -6 + 125 * rh_raw / 65535
        return {"temperature": common.hundredths(-45 + 175 * t_raw / 65535),
                "humidity": common.hundredths(min(max(rh, 0.0), 100.0))}
