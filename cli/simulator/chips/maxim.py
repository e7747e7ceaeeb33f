# Emulated Maxim DS18B20 on a FakeOneWire: ROM code (family 0x28, 48-bit serial, CRC), convert T taking
# 750 ms, a 9-byte scratchpad with its CRC. The power-on temperature register holds 85 °C (0x0550).
# The Dallas CRC-8 is computed here as the unreflected CRC (polynomial 0x31, init 0) of bit-reversed bytes,
# bit-reversed at the end: the same CRC, reached apart from the driver's shift loop.

from .bus import Chip


def _reverse(b):
    r = 0
    for i in range(8):
        if b & (1 << i):
            r |= 1 << (7 - i)
    return r


def crc8(data):
    crc = 0
    for byte in data:
        crc ^= _reverse(byte)
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return _reverse(crc)


def rom_code(serial, family=0x28):
    body = bytes([family] + [(serial >> (8 * i)) & 0xFF for i in range(6)])
    return body + bytes([crc8(body)])


class DS18B20Chip(Chip):
    def __init__(self, serial=0x0000016A3C8F, surface_temperature=14.5):
        Chip.__init__(self, surface_temperature=surface_temperature)
        self.rom = rom_code(serial)
        self.raw = 0x0550
        self.config = 0x7F  # 12-bit resolution
        self.converting_until = None
        self.zeros = False  # a data wire held low reads all zeros

    def convert(self):
        self.converting_until = self.now() + 750

    def _update(self):
        if self.converting_until is not None and self.now() >= self.converting_until:
            self.converting_until = None
            raw = int(round(self.value("surface_temperature") * 16)) & 0xFFFF
            if not self.stuck or self.raw == 0x0550:
                self.raw = raw

    def scratchpad(self):
        if self.zeros:
            return bytes(9)
        self._update()
        # Bytes 2-3 TH and TL (user bytes, here their factory values), 4 configuration, 5-7 reserved.
        pad = bytes([self.raw & 0xFF, self.raw >> 8, 0x4B, 0x46, self.config, 0xFF, 0x0C, 0x10])
        crc = crc8(pad)
        if self.take_corrupt():
            crc ^= 0x01
        return pad + bytes([crc])
