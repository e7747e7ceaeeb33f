# Plantower PMS5003 particulate sensor (PM1, PM2.5, PM10) on a UART at 9600 baud, 8N1.
# From the PMS5003 data manual (2016): in its default active mode it sends a 32-byte frame, most significant
# byte first:
#   0x42 0x4D, frame length (2 x 13 + 2 = 28), then 13 data words:
#   1-3  PM1.0, PM2.5, PM10 in µg/m³ at CF=1 ("standard particle", for factory calibration)
#   4-6  PM1.0, PM2.5, PM10 in µg/m³ under atmospheric environment   <- what we report
#   7-12 particles beyond 0.3, 0.5, 1.0, 2.5, 5.0, 10 µm in 0.1 L of air
#   13   reserved
#   then a check word: the sum of every byte before it, start characters included.
# Frames come every 200-800 ms when the air changes fast, every 2.3 s when it is steady.

from . import common
from .uart import UARTDriver

START = b"\x42\x4d"
FRAME = 32
LENGTH = 2 * 13 + 2


def decode(frame):
    """The 13 data words of one 32-byte frame; raises CRCError on a bad check word, BadValue on a frame
    with the wrong start or length."""
    if len(frame) != FRAME or frame[0:2] != START:
        raise common.BadValue("pms5003 frame does not start with 0x42 0x4d")
    if ((frame[2] << 8) | frame[3]) != LENGTH:
        raise common.BadValue("pms5003 frame length is %d, not %d" % ((frame[2] << 8) | frame[3], LENGTH))
    check = (frame[30] << 8) | frame[31]
    if sum(frame[0:30]) & 0xFFFF != check:
        raise common.CRCError("pms5003 frame has a bad check code (0x%04x, expected 0x%04x)"
                              % (check, sum(frame[0:30]) & 0xFFFF))
    return [(frame[i] << 8) | frame[i + 1] for i in range(4, 30, 2)]


class PMS5003(UARTDriver):
    NAME = "pms5003"
    QUANTITIES = ("pm1", "pm2_5", "pm10")
    HEAD = START
    FRAME = FRAME
    TIMEOUT_MS = 3000        # 2.3 s between frames in steady air
    STUCK_AFTER = 10         # the particle counts move even when the masses do not

    def _valid(self, frame):
        decode(frame)

    def read(self):
        words = decode(self._frame())
        self._fresh(tuple(words[3:12]))
        return {"pm1": words[3], "pm2_5": words[4], "pm10": words[5]}
