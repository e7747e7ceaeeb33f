# Maxim DS18B20 1-Wire thermometer: the wall-surface temperature of the damp kit.
# From the DS18B20 datasheet: after a reset and its presence pulse, a ROM command picks the chip (0xCC skip
# ROM when it is alone on the wire, 0x55 match ROM + its 8-byte ROM code otherwise), then a function command:
# 0x44 convert T (750 ms at 12 bits), 0xBE read scratchpad (9 bytes: temperature LSB, MSB, TH, TL, config,
# three reserved, CRC). The CRC is the Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, LSB first) of the first 8.
# The temperature is a signed 16-bit count of 1/16 °C; at 9, 10 or 11 bits (config bits 6:5) the lowest
# bits are undefined. 85 °C (0x0550) is the power-on value: read back, it means no conversion happened.
# The 1-Wire object is MicroPython's onewire.OneWire (reset, writebyte, write, readinto, scan).

from . import common

FAMILY = 0x28
SKIP_ROM = 0xCC
MATCH_ROM = 0x55
CONVERT_T = 0x44
READ_SCRATCHPAD = 0xBE
CONVERT_MS = 750
POWER_ON_RAW = 0x0550
ALL_ONES = b"\xff" * 9
ALL_ZEROS = bytes(9)


def temperature(lsb, msb, config=0x7F):
    """°C from the scratchpad's temperature bytes, masking the bits a lower resolution leaves undefined."""
    raw = (msb << 8) | lsb
    if raw & 0x8000:
        raw -= 65536
    bits = 9 + ((config >> 5) & 0x03)
    raw &= ~((1 << (12 - bits)) - 1)
    return raw / 16


def crc8(data, end=None):
    """CRC-8 of Dallas/Maxim 1-Wire chips: polynomial x^8 + x^5 + x^4 + 1 shifted out least significant bit
    first (0x31 reflected is 0x8C), init 0, over data[:end] (read in place). Over a ROM code or scratchpad
    including its CRC byte it gives 0."""
    crc = 0
    for i in range(len(data) if end is None else end):
        byte = data[i]
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


class DS18B20(common.Driver):
    NAME = "ds18b20"
    QUANTITIES = ("surface_temperature",)
    # A wall changes slowly and the chip resolves 1/16 °C: the same value for an hour is honest.
    STUCK_AFTER = 240

    def __init__(self, onewire, rom=None, sleep_ms=None, stuck_after=None):
        common.Driver.__init__(self, sleep_ms, stuck_after)
        self.ow = onewire
        self.rom = bytes(rom) if rom is not None else None
        self.pad = bytearray(9)  # the scratchpad, read into the same buffer each time
        if self.rom is not None:
            self.name = "ds18b20@" + "".join(["%02x" % b for b in self.rom])

    def _select(self):
        if not self.ow.reset():
            raise common.NoAnswer("%s gives no presence pulse on the 1-Wire bus" % self.name)
        if self.rom is None:
            self.ow.writebyte(SKIP_ROM)
        else:
            self.ow.writebyte(MATCH_ROM)
            self.ow.write(self.rom)

    def read(self):
        self._select()
        self.ow.writebyte(CONVERT_T)
        self.sleep_ms(CONVERT_MS)
        self._select()
        self.ow.writebyte(READ_SCRATCHPAD)
        pad = self.pad
        self.ow.readinto(pad)
        if pad == ALL_ONES:
            raise common.NoAnswer("%s sends nothing back (all ones on the wire)" % self.name)
        if pad == ALL_ZEROS:
            # Eight zeros have CRC zero, so this would pass the check: a wire held low, not a reading.
            raise common.NoAnswer("%s sends all zeros: the data wire is held low" % self.name)
        crc = crc8(pad, 8)
        if crc != pad[8]:
            raise common.CRCError("%s scratchpad has a bad CRC (0x%02x, expected 0x%02x)"
                                  % (self.name, pad[8], crc))
        raw = pad[0] | (pad[1] << 8)
        if raw == POWER_ON_RAW:
            raise common.BadValue("%s reads its power-on value 85 °C: the conversion did not run" % self.name)
        self._fresh(raw)
        return {"surface_temperature": temperature(pad[0], pad[1], pad[4])}


def roms(onewire):
    """The ROM codes of the DS18B20s on the bus whose ROM CRC is right."""
    found = []
    for rom in onewire.scan():
        rom = bytes(rom)
        if len(rom) == 8 and rom[0] == FAMILY and crc8(rom[:7]) == rom[7]:
            found.append(rom)
    return found
