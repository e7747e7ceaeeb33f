# What the Sensirion chips share (SHT3x, SHT4x, SCD4x): their CRC-8, answers of 16-bit words each followed by its
# CRC, 16-bit commands, and telling the chips apart on a bus by whether they answer a command. MicroPython
# common subset; loaded with the driver of a Sensirion chip only.

from . import common


def crc8(data, start=0, end=None):
    """CRC-8 of Sensirion's chips: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final
    XOR, over the two bytes of a word (data[start:end], read in place). CRC(0xBEEF) = 0x92."""
    crc = 0xFF
    for i in range(start, len(data) if end is None else end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def words(data, who):
    """Split a Sensirion answer (word MSB, word LSB, CRC, ...) into its 16-bit words, checking each CRC."""
    out = []
    for i in range(0, len(data) - 2, 3):
        crc = crc8(data, i, i + 2)
        if crc != data[i + 2]:
            raise common.CRCError("%s sent word %d with a bad CRC (0x%02x, expected 0x%02x)"
                                  % (who, i // 3, data[i + 2], crc))
        out.append((data[i] << 8) | data[i + 1])
    return out


def i2c_read(i2c, address, n, who):
    buf = bytearray(n)
    try:
        i2c.readfrom_into(address, buf)
    except OSError as e:
        raise common.NoAnswer("%s at 0x%02x does not answer (%s)" % (who, address, common.errno_text(e)))
    return buf


def command_bytes(code):
    """A Sensirion 16-bit command, most significant byte first."""
    return bytes([code >> 8, code & 0xFF])


def answers(i2c, address, command, wait, n, who, sleep_ms):
    """True when the chip at `address` answers `command` (bytes), `wait` ms later, with `n` bytes of words whose
    CRCs are right: how the Sensirion chips are told apart on a bus."""
    try:
        common.i2c_write(i2c, address, command, who)
        sleep_ms(wait)
        words(i2c_read(i2c, address, n, who), who)
    except common.SensorError:
        return False
    return True
