# Nova Fitness SDS011 particulate sensor (PM2.5, PM10) on a UART at 9600 baud, 8N1.
# From the SDS011 datasheet and its control protocol (v1.3): in its default active mode it sends a 10-byte
# frame about once a second:
#   0xAA 0xC0 PM2.5-low PM2.5-high PM10-low PM10-high ID1 ID2 checksum 0xAB
# checksum = low 8 bits of the sum of the six data bytes (PM and ID); PM = (high * 256 + low) / 10 µg/m³.
# What sits in the UART's buffer may be minutes old, so read() drops it and waits for a fresh frame.

from . import common

HEAD = 0xAA
DATA = 0xC0
TAIL = 0xAB
FRAME = 10
POLL_MS = 50


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


def last_frame(buf, head, size, valid):
    """The last frame in buf that starts with the two bytes `head`, is `size` long and passes valid(frame);
    (frame, error): error is the last exception when frames were there but none was valid."""
    error = None
    i = len(buf) - size
    while i >= 0:
        if buf[i] == head[0] and buf[i + 1] == head[1]:  # no slice per position: the heap is small
            frame = buf[i:i + size]
            try:
                valid(frame)
                return frame, None
            except common.SensorError as e:
                if error is None:
                    error = e
        i -= 1
    return None, error


class UARTDriver(common.Driver):
    """A sensor that streams frames: read() drains the UART, then waits up to timeout_ms for a valid frame."""
    HEAD = b""
    FRAME = 0
    TIMEOUT_MS = 2500

    def __init__(self, uart, sleep_ms=None, stuck_after=None, timeout_ms=None):
        common.Driver.__init__(self, sleep_ms, stuck_after)
        self.uart = uart
        self.timeout_ms = timeout_ms or self.TIMEOUT_MS

    def _valid(self, frame):
        raise NotImplementedError

    def _frame(self):
        for _ in range(64):  # drop what is buffered: it is old
            if not self.uart.any():
                break
            self.uart.read()
        buf = b""
        waited = 0
        error = None
        while True:
            chunk = self.uart.read()
            if chunk:
                buf = (buf + chunk)[-4 * self.FRAME:]
                frame, error = last_frame(buf, self.HEAD, self.FRAME, self._valid)
                if frame is not None:
                    return frame
            if waited >= self.timeout_ms:
                break
            self.sleep_ms(POLL_MS)
            waited += POLL_MS
        if error is not None:
            raise error
        if buf:
            raise common.NoAnswer("%s sent %d bytes in %d ms but no whole frame" % (self.name, len(buf), waited))
        raise common.NoAnswer("%s sent nothing in %d ms" % (self.name, waited))


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
