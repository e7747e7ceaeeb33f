# Emulated UART particulate sensors in their default active mode: Nova SDS011 (a 10-byte frame a second)
# and Plantower PMS5003 (a 32-byte frame every `period_ms`).

from .bus import Chip


class StreamingChip(Chip):
    PERIOD_MS = 1000

    def __init__(self, period_ms=None, phase_ms=300, **values):
        Chip.__init__(self, **values)
        self.period_ms = period_ms or self.PERIOD_MS
        self.phase_ms = phase_ms

    def stream(self, after_ms, until_ms):
        """The bytes of the frames sent in (after_ms, until_ms]; at most the last 16 frames."""
        first = (after_ms - self.phase_ms) // self.period_ms + 1
        last = (until_ms - self.phase_ms) // self.period_ms
        out = b""
        for k in range(max(first, last - 15, 0), last + 1):
            out += self.frame(self.phase_ms + k * self.period_ms)
        return out

    def fields(self, at_ms):
        if self.series is not None:
            return self.series.at(at_ms)
        return self.values


class SDS011Chip(StreamingChip):
    """0xAA 0xC0 PM2.5 (LSB, MSB) PM10 (LSB, MSB) ID1 ID2 checksum 0xAB, PM in 0.1 µg/m³."""

    def __init__(self, pm2_5=12.3, pm10=20.1, device_id=0xA160, **kw):
        StreamingChip.__init__(self, pm2_5=pm2_5, pm10=pm10, **kw)
        self.device_id = device_id

    def frame(self, at_ms):
        v = self.fields(at_ms)
        pm25 = int(round(v["pm2_5"] * 10))
        pm10 = int(round(v["pm10"] * 10))
        data = self.measured(bytes([pm25 & 0xFF, pm25 >> 8, pm10 & 0xFF, pm10 >> 8,
                                    self.device_id >> 8, self.device_id & 0xFF]))
        checksum = sum(data) & 0xFF
        if self.take_corrupt():
            checksum ^= 0x10
        return bytes([0xAA, 0xC0]) + data + bytes([checksum, 0xAB])


class PMS5003Chip(StreamingChip):
    """0x42 0x4D, length 28, 13 words (CF=1 PM1/2.5/10, atmospheric PM1/2.5/10, six particle counts,
    reserved), check word = sum of all bytes before it."""

    def __init__(self, pm1=8, pm2_5=12, pm10=15, **kw):
        StreamingChip.__init__(self, pm1=pm1, pm2_5=pm2_5, pm10=pm10, **kw)

    def frame(self, at_ms):
        v = self.fields(at_ms)
        pm1, pm25, pm10 = int(round(v["pm1"])), int(round(v["pm2_5"])), int(round(v["pm10"]))
        # Counts per 0.1 L: a plausible spread that falls with size and moves with the masses.
        counts = [pm25 * 150 + 300, pm25 * 45 + 90, pm25 * 8 + 20, pm10 - pm25 + 2, (pm10 - pm25) // 3, 0]
        words = self.measured(tuple([pm1, pm25, pm10, pm1, pm25, pm10] + counts + [0]))
        body = bytearray(b"\x42\x4d\x00\x1c")
        for w in words:
            body += bytes([(w >> 8) & 0xFF, w & 0xFF])
        check = sum(body) & 0xFFFF
        if self.take_corrupt():
            check ^= 0x0100
        return bytes(body) + bytes([check >> 8, check & 0xFF])
