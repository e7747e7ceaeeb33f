# What the UART sensors share (SDS011, PMS5003): a driver that drains the UART, then waits for a fresh frame
# that checks out. MicroPython common subset. Its own module, so a kit with a PMS5003 does not load the
# SDS011's code, nor the other way round.

from . import common

POLL_MS = 50


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
