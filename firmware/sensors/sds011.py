# Nova Fitness SDS011 particulate sensor (PM2.5, PM10) on a UART at 9600 baud, 8N1.
# From the SDS011 datasheet and its control protocol (v1.3): in its default active mode it sends a 10-byte
# frame about once a second:
#   0xAA 0xC0 PM2.5-low PM2.5-high PM10-low PM10-high ID1 ID2 checksum 0xAB
# checksum = low 8 bits of the sum of the six data bytes (PM and ID); PM = (high * 256 + low) / 10 µg/m³.
# What sits in the UART's buffer may be minutes old, so read() drops it and waits for a fresh frame.

from . import common
from .uart import UARTDriver

HEAD = 0xAA
DATA = 0xC0
TAIL = 0xAB
FRAME = 10


def decode(frame):
    """(pm2_5, pm10) in µg/m³ from one 10-byte frame; raises CRCError on a bad checksum, BadValue on a
    frame that is not a measurement."""
    if len(frame) != FRAME or frame[0] != HEAD or frame[1] != DATA or frame[9] != TAIL:
        raise common.BadValue("sds011 frame is not a measurement (%d bytes, starting %s)"
                              % (len(frame), " ".join(["%02x" % b for b in frame[:2]])))
    if sum(frame[2:8]) & 0xFF != frame[8]:
        raise common.CRCError("sds011 frame has a bad checksum (0x%02x, expected 0x%02x)"
                              % (frame[8], sum(frame[2:8]) & 0xFF))
    return ((frame[3] << 8) | frame[2]) / 10, ((frame[5] << 8) | frame[4]) / 10


class SDS011(UARTDriver):
    NAME = "sds011"
    QUANTITIES = ("pm2_5", "pm10")
    HEAD = bytes([HEAD, DATA])
    FRAME = FRAME
    TIMEOUT_MS = 2500        # one frame a second, "1 + 0.5 s" at worst
    STUCK_AFTER = 30         # clean air can read the same tenths for a while

    def _valid(self, frame):
        decode(frame)

    def read(self):
        frame = self._frame()
        pm2_5, pm10 = decode(frame)
        self._fresh(bytes(frame[2:6]))
        return {"pm2_5": pm2_5, "pm10": pm10}
