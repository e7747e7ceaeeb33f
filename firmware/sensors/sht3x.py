# Sensirion SHT3x (SHT30, SHT31, SHT35) temperature and humidity, on I2C at 0x44 (ADDR low) or 0x45 (ADDR high).
# From the SHT3x-DIS datasheet: single shot, high repeatability, clock stretching disabled is command 0x2400;
# the measurement takes at most 15.5 ms, and until it is done the chip NACKs a read. The answer is six bytes:
# temperature word, its CRC, humidity word, its CRC (CRC-8 0x31, init 0xFF). Conversions:
#   T = -45 + 175 * S_T / (2^16 - 1)  [°C]      RH = 100 * S_RH / (2^16 - 1)  [%]
# Read status register (0xF32D) answers one word with its CRC: detection uses it to tell an SHT3x from an SHT4x.

from . import common, sensirion

MEASURE_HIGH = 0x2400
READ_STATUS = 0xF32D
MEASURE_MS = 16


class SHT3x(common.I2CDriver):
    NAME = "sht3x"
    ADDRESSES = (0x44, 0x45)
    QUANTITIES = ("temperature", "humidity")
    STUCK_AFTER = 10

    @staticmethod
    def identify(i2c, address, sleep_ms=common.wait_ms):
        """True when the chip at `address` answers the SHT3x status-register command with a valid CRC."""
        return sensirion.answers(i2c, address, sensirion.command_bytes(READ_STATUS), 1, 3, "sht3x", sleep_ms)

    def read(self):
        self._command(MEASURE_HIGH)
        self.sleep_ms(MEASURE_MS)
        t_raw, rh_raw = sensirion.words(self._read(6), self.name)
        self._fresh((t_raw, rh_raw))
        return {"temperature": common.hundredths(-45 + 175 * t_raw / 65535),
                "humidity": common.hundredths(100 * rh_raw / 65535)}
