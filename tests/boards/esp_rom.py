"""An ESP32-family chip in its ROM bootloader (download mode), on a pseudo-terminal, for esptool to talk to.

    with EspRomPeer(chip="esp32s3") as rom:
        rom.port                     # /dev/pts/N: give it to esptool (or `sensing device flash --port`)
        rom.flash[0x0:0x100]         # the chip's SPI flash, 4 MB of 0xFF at the start
        rom.commands                 # the names of the commands esptool sent, in order

It answers the serial protocol of the ROM loader as Espressif's "Serial Protocol" document describes it:
SLIP frames (0xC0 ends, 0xDB escapes), a request `<BBHI` (0, command, size, checksum) plus data, an answer
`<BBHI` (1, command, size, value) plus data ending in the ROM's four status bytes (status, error, 0, 0).
The commands are those esptool uses with --no-stub, so only what the mask ROM itself does is needed:

    SYNC                 8 answers, as the ROM gives, with a non-zero value (zero would mean a stub)
    READ_REG, WRITE_REG  a small register file; the SPI controller's "user command" runs when its USR bit is
                         set (RDID gives the flash id, RDSFDP the SFDP signature) and clears the bit, as done
    GET_SECURITY_INFO    20 bytes with the chip id (ESP32-S3 and later), 12 bytes on the ESP32-S2, and
                         "invalid message" on the ESP32, whose ROM does not know it: esptool then reads the
                         chip's magic word at 0x40001000
    SPI_ATTACH, SPI_SET_PARAMS   accepted; the parameters are kept
    FLASH_BEGIN          erases the sectors it covers, as the ROM does before writing
    FLASH_DATA           checks the block's checksum and sequence number, writes the block
    FLASH_END            accepted; with "run" the chip would leave the loader, here nothing happens
    SPI_FLASH_MD5        MD5 of a flash region, as 32 hex characters, which is how the ROM answers
    CHANGE_BAUDRATE      answers at the old rate, then listens at the new one

The line rate: the peer reads the rate the host set on the pty (a pty pair shares one termios, and a serial
port's rate is all a UART sees). Bytes sent at another rate than the ROM's are lost, as garbage would be on a
real line. `max_baud` is the fastest rate the line can carry: above it the peer accepts CHANGE_BAUDRATE and
then hears nothing, like a long cable or a cheap USB-serial adapter at 921600 baud.

What a pty cannot do: DTR/RTS (its ioctls fail), so esptool must connect with "no-reset" and leave with
"no-reset", and a real board's reset into the bootloader is not exercised. A real board that was switched
to a rate its line cannot carry is reset by the host (DTR/RTS) and is back at 115200; here the host setting
its port back to 115200 stands in for that reset.
"""

import hashlib
import os
import select
import struct
import termios
import threading
import tty

ROM_BAUD = 115200
FLASH_SIZE = 4 * 1024 * 1024
SECTOR = 0x1000
RDID, RDSFDP = 0x9F, 0x5A
FLASH_ID = 0x1640EF  # RDID of a Winbond W25Q32: maker 0xEF, type 0x40, capacity 0x16 (4 MB)
SFDP_SIGNATURE = 0x50444653  # "SFDP"
USR_BIT = 1 << 18  # SPI_CMD_REG: start a user command; the hardware clears it when done

COMMANDS = {
    0x02: "FLASH_BEGIN", 0x03: "FLASH_DATA", 0x04: "FLASH_END", 0x05: "MEM_BEGIN", 0x06: "MEM_END",
    0x07: "MEM_DATA", 0x08: "SYNC", 0x09: "WRITE_REG", 0x0A: "READ_REG", 0x0B: "SPI_SET_PARAMS",
    0x0D: "SPI_ATTACH", 0x0F: "CHANGE_BAUDRATE", 0x10: "FLASH_DEFL_BEGIN", 0x13: "SPI_FLASH_MD5",
    0x14: "GET_SECURITY_INFO", 0xD0: "ERASE_FLASH",
}  # fmt: skip

# Per chip, from its Technical Reference Manual: the value esptool identifies it by (the ROM word at
# 0x40001000 for the older chips, the chip id in the security info for the newer), and where its SPI0
# controller's registers are (command, user, user2, W0).
CHIPS = {
    "esp32": {"magic": 0x00F01D83, "chip_id": None, "spi": 0x3FF42000, "usr2": 0x24, "w0": 0x80,
              "uart_clkdiv": 0x3FF40014},
    "esp32s2": {"magic": 0x000007C6, "chip_id": None, "spi": 0x3F402000, "usr2": 0x20, "w0": 0x58,
                "uart_clkdiv": 0x3F400014},
    "esp32s3": {"magic": None, "chip_id": 9, "spi": 0x60002000, "usr2": 0x20, "w0": 0x58,
                "uart_clkdiv": 0x60000014},
    "esp32c3": {"magic": None, "chip_id": 5, "spi": 0x60002000, "usr2": 0x20, "w0": 0x58,
                "uart_clkdiv": 0x60000014},
    "esp32c6": {"magic": None, "chip_id": 13, "spi": 0x60003000, "usr2": 0x20, "w0": 0x58,
                "uart_clkdiv": 0x60000014},
}  # fmt: skip
MAGIC_REG = 0x40001000
XTAL = 40_000_000  # the crystal; the ROM's UART divides it down to the line rate
# The ESP32 ROM measures its crystal against the 8 MHz RC clock (RTC calibration value times the eFuse
# CK8M_FREQ); esptool scales the rate it asks for by that measurement. A chip whose measurement is exact:
ESP32_RTC_CALI = (0x3FF5F06C, 1024 << 7)  # TIMERS_RTC_CALI_VALUE = 1024
ESP32_EFUSE_CK8M = (0x3FF5A010, 100)  # eFuse BLK0 word 4, low byte: CK8M_FREQ; 1024 * 15625 * 100 / 40 = XTAL

OK = b"\x00\x00\x00\x00"
INVALID_MESSAGE = b"\x01\x05\x00\x00"
BAD_CHECKSUM = b"\x01\x07\x00\x00"
FAILED = b"\x01\x06\x00\x00"

SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (9600, 57600, 115200, 230400, 460800, 921600, 1500000)
          if hasattr(termios, f"B{rate}")}  # fmt: skip


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def rom_checksum(data: bytes) -> int:
    state = 0xEF
    for byte in data:
        state ^= byte
    return state


class EspRomPeer:
    """See the module's docstring."""

    def __init__(self, chip: str = "esp32", max_baud: int = 921600, flash_size: int = FLASH_SIZE,
                 stuck_bit_at: int | None = None):  # fmt: skip
        if chip not in CHIPS:
            raise ValueError(f"unknown chip {chip!r}: one of {', '.join(CHIPS)}")
        self.chip = chip
        self.max_baud = max_baud
        self.stuck_bit_at = stuck_bit_at  # a worn flash cell: bit 0 of this byte stays 1, whatever is written
        self.flash = bytearray(b"\xff" * flash_size)
        self.commands: list[str] = []
        self.bauds: list[int] = []  # every rate the host asked for with CHANGE_BAUDRATE
        self.resets = 0  # stand-ins for a reset by the host (see the module's docstring)
        self.baud = ROM_BAUD
        self.port: str | None = None
        self._spec = CHIPS[chip]
        self._registers: dict[int, int] = {}
        if self._spec["magic"] is not None:
            self._registers[MAGIC_REG] = self._spec["magic"]
        if chip == "esp32":
            self._registers.update([ESP32_RTC_CALI, ESP32_EFUSE_CK8M])
        self._writing: dict | None = None  # the FLASH_BEGIN in progress
        self._frame: bytearray | None = None
        self._escaped = False
        self._master = self._slave = None
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------- public

    def start(self) -> "EspRomPeer":
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)  # our end stays open, as a USB-serial adapter stays plugged in
        self._thread = threading.Thread(target=self._serve, name=f"ESP ROM {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        self._thread = None
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "EspRomPeer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EspRomPeer {self.chip} at {self.port}, {self.baud} baud>"

    # ------------------------------------------------------------------------------------------- the line

    def _host_baud(self) -> int | None:
        try:
            return SPEEDS.get(termios.tcgetattr(self._master)[5])
        except termios.error:
            return None

    def _hears(self) -> bool:
        """Whether bytes arriving now reach the ROM intact."""
        host = self._host_baud()
        if host == ROM_BAUD and self.baud != ROM_BAUD:
            self.baud = ROM_BAUD  # the reset a real host would do with DTR/RTS
            self.resets += 1
        return host == self.baud and self.baud <= self.max_baud

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                data = os.read(self._master, 65536)
            except OSError:
                continue
            if not self._hears():
                self._frame = None
                continue
            for byte in data:
                self._take(byte)

    def _take(self, byte: int) -> None:
        if byte == 0xC0:
            if self._frame:
                self._answer(bytes(self._frame))
            self._frame = bytearray()
        elif self._frame is None:
            return  # noise between frames
        elif self._escaped:
            self._frame.append({0xDC: 0xC0, 0xDD: 0xDB}.get(byte, byte))
            self._escaped = False
        elif byte == 0xDB:
            self._escaped = True
        else:
            self._frame.append(byte)

    def _send(self, op: int, body: bytes, value: int = 0) -> None:
        os.write(self._master, slip(struct.pack("<BBHI", 1, op, len(body), value) + body))

    # ------------------------------------------------------------------------------------------- commands

    def _answer(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != 0:
            return
        _, op, size, checksum = struct.unpack("<BBHI", frame[:8])
        data = frame[8 : 8 + size]
        name = COMMANDS.get(op, f"0x{op:02X}")
        self.commands.append(name)
        handler = getattr(self, "_" + name.lower(), None)
        if handler is None:  # ERASE_FLASH, the compressed writes and the rest belong to the stub, not the ROM
            self._send(op, INVALID_MESSAGE)
            return
        handler(op, data, checksum)

    def _sync(self, op: int, data: bytes, checksum: int) -> None:
        if data != b"\x07\x07\x12\x20" + b"\x55" * 32:
            return
        for _ in range(8):
            self._send(op, OK, value=0x20120707)

    def _read_reg(self, op: int, data: bytes, checksum: int) -> None:
        (address,) = struct.unpack("<I", data[:4])
        if address == self._spec["uart_clkdiv"]:
            self._send(op, OK, value=XTAL // self.baud)
            return
        self._send(op, OK, value=self._registers.get(address, 0))

    def _write_reg(self, op: int, data: bytes, checksum: int) -> None:
        for at in range(0, len(data) - len(data) % 16, 16):
            address, value, mask, _delay = struct.unpack("<IIII", data[at : at + 16])
            old = self._registers.get(address, 0)
            self._registers[address] = (old & ~mask) | (value & mask)
            if address == self._spec["spi"] and value & USR_BIT:
                self._spi_user_command()
        self._send(op, OK)

    def _spi_user_command(self) -> None:
        base, w0 = self._spec["spi"], self._spec["spi"] + self._spec["w0"]
        command = self._registers.get(base + self._spec["usr2"], 0) & 0xFF
        self._registers[w0] = {RDID: FLASH_ID, RDSFDP: SFDP_SIGNATURE}.get(command, 0)
        self._registers[base] = 0

    def _get_security_info(self, op: int, data: bytes, checksum: int) -> None:
        if self.chip == "esp32":
            self._send(op, INVALID_MESSAGE)
        elif self.chip == "esp32s2":
            self._send(op, struct.pack("<IBBBBBBBB", 0, 0, 0, 0, 0, 0, 0, 0, 0) + OK)
        else:
            info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self._spec["chip_id"], 0)
            self._send(op, info + OK)

    def _spi_attach(self, op: int, data: bytes, checksum: int) -> None:
        self._send(op, OK)

    def _spi_set_params(self, op: int, data: bytes, checksum: int) -> None:
        _id, total, _block, _sector, _page, _mask = struct.unpack("<IIIIII", data[:24])
        self._send(op, OK if total <= len(self.flash) else FAILED)

    def _change_baudrate(self, op: int, data: bytes, checksum: int) -> None:
        new, _old = struct.unpack("<II", data[:8])
        self._send(op, OK)
        self.bauds.append(new)
        self.baud = new

    def _flash_begin(self, op: int, data: bytes, checksum: int) -> None:
        erase, blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        if offset % SECTOR or offset + erase > len(self.flash):
            self._send(op, FAILED)
            return
        end = offset + -(-erase // SECTOR) * SECTOR
        self.flash[offset:end] = b"\xff" * (end - offset)
        self._writing = {"offset": offset, "blocks": blocks, "size": block_size, "next": 0}
        self._send(op, OK)

    def _flash_data(self, op: int, data: bytes, checksum: int) -> None:
        size, seq, _, _ = struct.unpack("<IIII", data[:16])
        block = data[16 : 16 + size]
        writing = self._writing
        if writing is None or seq != writing["next"] or seq >= writing["blocks"] or len(block) != size:
            self._send(op, FAILED)
            return
        if rom_checksum(block) != checksum:
            self._send(op, BAD_CHECKSUM)
            return
        at = writing["offset"] + seq * writing["size"]
        for i, byte in enumerate(block[: len(self.flash) - at]):
            self.flash[at + i] &= byte  # flash bits only go from 1 to 0 without an erase
            if at + i == self.stuck_bit_at:
                self.flash[at + i] |= 1
        writing["next"] += 1
        self._send(op, OK)

    def _flash_end(self, op: int, data: bytes, checksum: int) -> None:
        self._writing = None
        self._send(op, OK)

    def _spi_flash_md5(self, op: int, data: bytes, checksum: int) -> None:
        address, size, _, _ = struct.unpack("<IIII", data[:16])
        if address + size > len(self.flash):
            self._send(op, FAILED)
            return
        digest = hashlib.md5(self.flash[address : address + size]).hexdigest().encode()
        self._send(op, digest + OK)


def app_image(chip_id: int, size: int = 40_000, seed: int = 1) -> bytes:
    """An ESP application image as the ESP-IDF lays one out: the 8-byte header (magic 0xE9, one segment),
    the 16-byte extended header carrying the chip id at byte 12, one segment of seeded random bytes (they
    contain SLIP's 0xC0 and 0xDB, so escaping is exercised), the XOR checksum, padding to 16 bytes."""
    import random

    body = random.Random(seed).randbytes(size)
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)
    extended = struct.pack("<B3sHBHH4sB", 0xEE, b"\x00\x00\x00", chip_id, 0, 0, 0xFFFF, b"\x00" * 4, 0)
    segment = struct.pack("<II", 0x3FFB0000, len(body)) + body
    image = header + extended + segment
    image += b"\x00" * (15 - len(image) % 16) + bytes([rom_checksum(body)])
    return image
