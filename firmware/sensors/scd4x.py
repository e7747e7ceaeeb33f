# Sensirion SCD4x (SCD40, SCD41) CO2, temperature and humidity, on I2C at 0x62.
# From the SCD4x datasheet (v1.3): commands are 16-bit, answers are words each followed by a CRC-8
# (polynomial 0x31, init 0xFF).
#   start_periodic_measurement 0x21B1   a new measurement every 5 s; only accepted in idle mode
#   stop_periodic_measurement  0x3F86   back to idle; the chip takes 500 ms before it answers again
#   get_data_ready_status      0xE4B8   1 ms; one word: its least significant 11 bits are 0 when not ready
#   read_measurement           0xEC05   1 ms; CO2 [ppm] = word0, T = -45 + 175 * word1 / 2^16 [°C],
#                                       RH = 100 * word2 / 2^16 [%]. Reading empties the buffer.
#   get_serial_number          0x3682   1 ms, idle mode only; three words
# A board that restarts leaves the SCD4x powered and measuring, so start() stops it first.

from . import common, sensirion

START_PERIODIC = 0x21B1
STOP_PERIODIC = 0x3F86
DATA_READY = 0xE4B8
READ_MEASUREMENT = 0xEC05
SERIAL_NUMBER = 0x3682
STOP_MS = 500
COMMAND_MS = 1
PERIOD_MS = 5000
POLL_MS = 100


class SCD4x(common.I2CDriver):
    NAME = "scd4x"
    ADDRESSES = (0x62,)
    QUANTITIES = ("co2", "temperature", "humidity")
    STUCK_AFTER = 10

    def __init__(self, i2c, address=None, sleep_ms=None, stuck_after=None, ready_timeout_ms=PERIOD_MS + 500):
        common.I2CDriver.__init__(self, i2c, address, sleep_ms, stuck_after)
        self.ready_timeout_ms = ready_timeout_ms
        self.started = False

    @staticmethod
    def identify(i2c, address, sleep_ms=common.wait_ms):
        """True when the chip at `address` stops measuring and answers its serial number with valid CRCs."""
        try:
            common.i2c_write(i2c, address, sensirion.command_bytes(STOP_PERIODIC), "scd4x")
        except common.SensorError:
            return False
        sleep_ms(STOP_MS)
        return sensirion.answers(i2c, address, sensirion.command_bytes(SERIAL_NUMBER), COMMAND_MS, 9, "scd4x",
                                        sleep_ms)

    def start(self):
        self._command(STOP_PERIODIC)
        self.sleep_ms(STOP_MS)
        self._command(START_PERIODIC)
        self.started = True

    def _ready(self):
        self._command(DATA_READY)
        self.sleep_ms(COMMAND_MS)
        return sensirion.words(self._read(3), self.name)[0] & 0x07FF != 0

    def read(self):
        if not self.started:
            self.start()
        waited = 0
        while not self._ready():
            if waited >= self.ready_timeout_ms:
                self.started = False  # perhaps it lost power and sits idle: start it again next time
                raise common.NotReady("%s has had no new measurement for %d ms" % (self.name, waited))
            self.sleep_ms(POLL_MS)
            waited += POLL_MS
        self._command(READ_MEASUREMENT)
        self.sleep_ms(COMMAND_MS)
        co2, t_raw, rh_raw = sensirion.words(self._read(9), self.name)
        self._fresh((co2, t_raw, rh_raw))
        return {"co2": co2,
                "temperature": common.hundredths(-45 + 175 * t_raw / 65536),
                "humidity": common.hundredths(100 * rh_raw / 65536)}
