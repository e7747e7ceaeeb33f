"""An ESP32-family chip in its ROM bootloader (download mode), on a pseudo-terminal, for esptool to talk to.

    with EspRomPeer(chip="esp32s3") as rom:
        rom.port                     # /dev/pts/N: give it to esptool (or `sensing device flash --port`)
        rom.flash[0x0:0x100]         # the chip's SPI flash, 4 MB of 0xFF at the start
        rom.commands                 # the names of the commands esptool sent, in order
        rom.stub_commands            # those of them the flasher stub answered

It answers the serial protocol of the ROM loader as Espressif's "Serial Protocol" document describes it:
SLIP frames (0xC0 ends, 0xDB escapes), a request `<BBHI` (0, command, size, checksum) plus data, an answer
`<BBHI` (1, command, size, value) plus data ending in the ROM's four status bytes (status, error, 0, 0).
The ROM's commands:

    SYNC                 8 answers, as the ROM gives, with a non-zero value (zero would mean a stub)
    READ_REG, WRITE_REG  a small register file; the SPI controller's "user command" runs when its USR bit is
                         set (RDID gives the flash id, RDSFDP the SFDP signature) and clears the bit, as done
    GET_SECURITY_INFO    20 bytes with the chip id (ESP32-S3 and later), 12 bytes on the ESP32-S2, and
                         "invalid message" on the ESP32, whose ROM does not know it: esptool then reads the
                         chip's magic word at 0x40001000
    SPI_ATTACH           two words (the ROM's extra "legacy" word); SPI_SET_PARAMS: the flash size is checked
    FLASH_BEGIN          erases the sectors it covers, as the ROM does before writing
    FLASH_DATA           checks the block's checksum and sequence number, writes the block
    FLASH_END            accepted; with "run" the chip would leave the loader, here nothing happens
    SPI_FLASH_MD5        MD5 of a flash region, as 32 hex characters, which is how the ROM answers
    CHANGE_BAUDRATE      answers at the old rate, then listens at the new one
    MEM_BEGIN, MEM_DATA  load a program into RAM, block by block, each checked by its checksum and sequence
    MEM_END              with the "execute" flag, jumps to the entry point: if the RAM holds esptool's flasher
                         stub where its JSON file says, the stub starts, says "OHAI", and answers from then on
                         (tests/boards/esp_stub.py); anything else leaves the chip silent

Compressed writes (FLASH_DEFL_*) and chip erase belong to the stub here: with --no-stub esptool writes
uncompressed and erases with FLASH_BEGIN.

The line rate: the peer reads the rate the host set on the pty (a pty pair shares one termios, and a serial
port's rate is all a UART sees). Bytes sent at another rate than the chip's are lost both ways, as garbage
would be on a real line. `max_baud` is the fastest rate the line can carry: above it the chip accepts
CHANGE_BAUDRATE and then hears nothing, like a long cable or a cheap USB-serial adapter at 921600 baud.
`noise` names a command whose first data block arrives with one bit flipped (line noise).

What a pty cannot do: DTR/RTS (its ioctls fail), so over the pty esptool must connect with "no-reset" and
leave with "no-reset"; the peer starts in its loader, as if BOOT had been held at power-up. A real board that
was switched to a rate its line cannot carry is reset by the host (DTR/RTS) and is back at 115200 in its ROM
loader, stub gone; here the host setting its port back to 115200 stands in for that reset. The reset itself,
DTR and RTS driving the board's EN and IO0, is exercised by EspBoard (tests/boards/esp_board.py) behind an
RFC 2217 server.
"""

import hashlib
import os
import select
import struct
import termios
import threading
import tty

from tests.boards.esp_stub import STUB_STATUS, FlasherStub, Refused, esptool_stub

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
    0x0D: "SPI_ATTACH", 0x0F: "CHANGE_BAUDRATE", 0x10: "FLASH_DEFL_BEGIN", 0x11: "FLASH_DEFL_DATA",
    0x12: "FLASH_DEFL_END", 0x13: "SPI_FLASH_MD5", 0x14: "GET_SECURITY_INFO", 0xD0: "ERASE_FLASH",
    0xD1: "ERASE_REGION", 0xD2: "READ_FLASH", 0xD3: "RUN_USER_CODE",
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

ROM_STATUS = {"bad length": 0x05, "unknown command": 0x05, "not supported": 0x05, "too much data": 0x05,
              "failed": 0x06, "not writing": 0x06, "checksum": 0x07, "inflate": 0x0B}  # fmt: skip
# What the ROM prints at 115200 when it starts (the ESP32's wording; esptool looks for "boot:0x.." and
# "waiting for download" after a reset to tell which mode the chip came up in).
BANNER = {
    "download": b"rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\n"
                b"waiting for download\r\n",
    "firmware": b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
}  # fmt: skip

SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (9600, 57600, 115200, 230400, 460800, 921600, 1500000)
          if hasattr(termios, f"B{rate}")}  # fmt: skip


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def rom_checksum(data: bytes) -> int:
    state = 0xEF
    for byte in data:
        state ^= byte
    return state


class EspChip(FlasherStub):
    """The chip without its wires: flash, RAM, registers, and the loader answering (the ROM's or the stub).
    A transport gives it the bytes the host sends (`receive`) and says at which rate the host's end of the
    line is (`_host_baud`); it sends with `_transmit`."""

    def __init__(self, chip: str = "esp32", max_baud: int = 921600, flash_size: int = FLASH_SIZE,
                 stuck_bit_at: int | None = None, noise: str | None = None):  # fmt: skip
        if chip not in CHIPS:
            raise ValueError(f"unknown chip {chip!r}: one of {', '.join(CHIPS)}")
        self.chip = chip
        self.max_baud = max_baud
        self.stuck_bit_at = stuck_bit_at  # a worn flash cell: bit 0 of this byte stays 1, whatever is written
        self.flash = bytearray(b"\xff" * flash_size)
        self.commands: list[str] = []
        self.stub_commands: list[str] = []
        self.bauds: list[tuple[int, int]] = []  # (new, old) of every CHANGE_BAUDRATE: old is 0 for the ROM
        self.boots: list[str] = []  # how the chip came up at each restart: "download" (ROM loader) or "firmware"
        self.loader: str | None = "rom"  # who answers: "rom", "stub", or None (firmware, held in reset, crashed)
        self.baud = ROM_BAUD
        self._spec = CHIPS[chip]
        self._noise = noise
        self._lock = threading.RLock()
        self._frame: bytearray | None = None
        self._escaped = False
        self._power_on()

    @property
    def resets(self) -> int:
        return len(self.boots)

    def _power_on(self) -> None:
        self._registers: dict[int, int] = {}
        if self._spec["magic"] is not None:
            self._registers[MAGIC_REG] = self._spec["magic"]
        if self.chip == "esp32":
            self._registers.update([ESP32_RTC_CALI, ESP32_EFUSE_CK8M])
        self.ram: dict[int, bytearray] = {}  # what MEM_BEGIN/MEM_DATA loaded, by address
        self._loading: dict | None = None  # the MEM_BEGIN in progress
        self._writing: dict | None = None  # the FLASH_BEGIN in progress
        self._deferred: str | None = None  # the stub's error to tell at the next command
        self._frame = None

    def restart(self, download: bool, banner: bool = True) -> None:
        """The chip leaves reset: in its ROM loader (download mode) or running its firmware, at 115200."""
        with self._lock:
            self._power_on()
            self.baud = ROM_BAUD
            self.loader = "rom" if download else None
            mode = "download" if download else "firmware"
            self.boots.append(mode)
            if banner:
                self._send_raw(BANNER[mode])

    def hold_in_reset(self) -> None:
        with self._lock:
            self.loader = None
            self._frame = None

    # ------------------------------------------------------------------------------------------- the line

    def _host_baud(self) -> int | None:
        raise NotImplementedError

    def _transmit(self, data: bytes) -> None:
        raise NotImplementedError

    def _line_carries(self) -> bool:
        return self._host_baud() == self.baud and self.baud <= self.max_baud

    def receive(self, data: bytes) -> None:
        """Bytes the host sent, at the rate its end of the line is set to."""
        with self._lock:
            if self.loader is None or not self._line_carries():
                self._frame = None
                return
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

    def _send_raw(self, data: bytes) -> None:
        if self._line_carries():
            self._transmit(data)

    def _reply(self, op: int, body: bytes = b"", value: int = 0, status: str | None = None) -> None:
        """An answer of the loader running now: the ROM ends it with four status bytes, the stub with two."""
        if self.loader == "rom":
            ending = b"\x00\x00\x00\x00" if status is None else bytes([1, ROM_STATUS[status], 0, 0])
        else:
            ending = struct.pack(">H", 0 if status is None else STUB_STATUS[status])
        payload = body + ending
        self._send_raw(slip(struct.pack("<BBHI", 1, op, len(payload), value) + payload))

    # ------------------------------------------------------------------------------------------- commands

    def _answer(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != 0 or self.loader is None:
            return
        _, op, size, checksum = struct.unpack("<BBHI", frame[:8])
        data = bytearray(frame[8 : 8 + size])
        name = COMMANDS.get(op, f"0x{op:02X}")
        self.commands.append(name)
        if self.loader == "stub":
            self.stub_commands.append(name)
            if self._deferred:  # what went wrong after the last block was acknowledged
                status, self._deferred = self._deferred, None
                self._reply(op, status=status)
                return
        if name == self._noise and len(data) > 16:
            data[16] ^= 0x01
            self._noise = None
        handler = getattr(self, f"_{self.loader}_{name.lower()}", None) or getattr(self, f"_{name.lower()}", None)
        try:
            if handler is None:
                raise Refused("unknown command")
            answer = handler(bytes(data), checksum)
        except Refused as refused:
            self._reply(op, status=refused.kind)
            return
        if answer is not None:
            value, body = answer
            self._reply(op, body, value)

    @staticmethod
    def _words(data: bytes, count: int) -> tuple[int, ...]:
        if len(data) < 4 * count:
            raise Refused("bad length")
        return struct.unpack(f"<{count}I", data[: 4 * count])

    @staticmethod
    def _xor(data: bytes) -> int:
        return rom_checksum(data)

    # What the chip's hardware does, whichever loader asks.

    def _erase(self, start: int, end: int) -> int:
        """Erase the sectors from `start` to `end`; returns where the erased sectors end."""
        start, end = start - start % SECTOR, -(-end // SECTOR) * SECTOR
        self.flash[start:end] = b"\xff" * (end - start)
        return end

    def _program(self, at: int, data: bytes) -> None:
        for i, byte in enumerate(data[: len(self.flash) - at]):
            self.flash[at + i] &= byte  # flash bits only go from 1 to 0 without an erase
            if at + i == self.stuck_bit_at:
                self.flash[at + i] |= 1

    def _md5(self, address: int, size: int) -> bytes:
        if address + size > len(self.flash):
            raise Refused("failed")
        return hashlib.md5(self.flash[address : address + size]).digest()

    def _read_reg(self, data: bytes, checksum: int):
        (address,) = self._words(data, 1)
        if address == self._spec["uart_clkdiv"]:
            return XTAL // self.baud, b""
        return self._registers.get(address, 0), b""

    def _write_reg(self, data: bytes, checksum: int):
        if not data or len(data) % 16:
            raise Refused("bad length")
        for at in range(0, len(data), 16):
            address, value, mask, _delay = struct.unpack("<IIII", data[at : at + 16])
            old = self._registers.get(address, 0)
            self._registers[address] = (old & ~mask) | (value & mask)
            if address == self._spec["spi"] and value & USR_BIT:
                self._spi_user_command()
        return 0, b""

    def _spi_user_command(self) -> None:
        base, w0 = self._spec["spi"], self._spec["spi"] + self._spec["w0"]
        command = self._registers.get(base + self._spec["usr2"], 0) & 0xFF
        self._registers[w0] = {RDID: FLASH_ID, RDSFDP: SFDP_SIGNATURE}.get(command, 0)
        self._registers[base] = 0

    def _get_security_info(self, data: bytes, checksum: int):
        if self.chip == "esp32":
            raise Refused("not supported")
        if self.chip == "esp32s2":
            return 0, struct.pack("<IBBBBBBBB", 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return 0, struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self._spec["chip_id"], 0)

    def _spi_set_params(self, data: bytes, checksum: int):
        _id, total, _block, _sector, _page, _mask = self._words(data, 6)
        if total > len(self.flash):
            raise Refused("failed")
        return 0, b""

    def _change_baudrate(self, data: bytes, checksum: int):
        new, old = self._words(data, 2)
        self.bauds.append((new, old))
        self._reply(0x0F)  # at the old rate
        self.baud = new

    # The ROM loader's own.

    def _rom_sync(self, data: bytes, checksum: int):
        if data != b"\x07\x07\x12\x20" + b"\x55" * 32:
            return
        for _ in range(8):
            self._reply(0x08, value=0x20120707)

    def _rom_spi_attach(self, data: bytes, checksum: int):
        self._words(data, 2)
        return 0, b""

    def _rom_flash_begin(self, data: bytes, checksum: int):
        erase, blocks, block_size, offset = self._words(data, 4)
        if offset % SECTOR or offset + erase > len(self.flash):
            raise Refused("failed")
        self._erase(offset, offset + erase)
        self._writing = {"offset": offset, "blocks": blocks, "size": block_size, "next": 0}
        return 0, b""

    def _rom_flash_data(self, data: bytes, checksum: int):
        seq, block = self._rom_block(self._writing, data, checksum)
        self._program(self._writing["offset"] + seq * self._writing["size"], block)
        return 0, b""

    def _rom_block(self, loading: dict | None, data: bytes, checksum: int) -> tuple[int, bytes]:
        size, seq, _, _ = self._words(data, 4)
        block = data[16 : 16 + size]
        if loading is None or seq != loading["next"] or seq >= loading["blocks"] or len(block) != size:
            raise Refused("failed")
        if rom_checksum(block) != checksum:
            raise Refused("checksum")
        loading["next"] += 1
        return seq, block

    def _rom_flash_end(self, data: bytes, checksum: int):
        self._writing = None
        return 0, b""

    def _rom_spi_flash_md5(self, data: bytes, checksum: int):
        return 0, self._md5(*self._words(data, 2)).hex().encode()

    def _rom_mem_begin(self, data: bytes, checksum: int):
        size, blocks, block_size, offset = self._words(data, 4)
        self._loading = {"offset": offset, "blocks": blocks, "size": block_size, "next": 0}
        self.ram[offset] = bytearray(size)
        return 0, b""

    def _rom_mem_data(self, data: bytes, checksum: int):
        seq, block = self._rom_block(self._loading, data, checksum)
        segment = self.ram[self._loading["offset"]]
        at = seq * self._loading["size"]
        if at + len(block) > len(segment):
            raise Refused("too much data")
        segment[at : at + len(block)] = block
        return 0, b""

    def _rom_mem_end(self, data: bytes, checksum: int):
        stay, entry = self._words(data, 2)
        self._loading = None
        self._reply(0x06)
        if stay:
            return
        stub = esptool_stub(self.chip)
        if entry == stub.entry and self.ram.get(stub.text_start) == stub.text and \
                self.ram.get(stub.data_start) == stub.data:  # fmt: skip
            self.loader = "stub"
            self._writing = None  # the stub keeps its own state, not the ROM's
            self._send_raw(slip(b"OHAI"))  # the stub's greeting, the one frame nobody asked for
        else:
            self.loader = None  # running something that is not the stub: the peer cannot, so it is silent


class EspRomPeer(EspChip):
    """The chip behind a pseudo-terminal, in its ROM loader from the start (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.port: str | None = None
        self._master = self._slave = None
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None

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

    def _host_baud(self) -> int | None:
        try:
            return SPEEDS.get(termios.tcgetattr(self._master)[5])
        except termios.error:
            return None

    def _transmit(self, data: bytes) -> None:
        os.write(self._master, data)

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                data = os.read(self._master, 65536)
            except OSError:
                continue
            if self._host_baud() == ROM_BAUD and self.baud != ROM_BAUD:
                self.restart(download=True, banner=False)  # the reset a real host would do with DTR/RTS
            self.receive(data)


def app_image(chip_id: int, size: int = 40_000, seed: int = 1, text: bytes = b"") -> bytes:
    """An ESP application image as the ESP-IDF lays one out: the 8-byte header (magic 0xE9, one segment),
    the 16-byte extended header carrying the chip id at byte 12, one segment of seeded random bytes from 16
    values, as compressible as code (so the stub's compressed writes are used; among them SLIP's 0xC0 and
    0xDB, so escaping is exercised), the XOR checksum, padding to 16 bytes. `text` (a build's banner, say) is
    put in the middle of the segment, as a program's strings are."""
    import random

    values = bytes([0x00, 0x01, 0x02, 0x08, 0x20, 0x3F, 0x40, 0x55, 0x80, 0xA5, 0xC0, 0xDB, 0xDC, 0xDD, 0xE9, 0xFF])
    body = bytes(random.Random(seed).choices(values, k=size))
    if text:
        body = body[: size // 2] + text + body[size // 2 + len(text) :]
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)
    extended = struct.pack("<B3sHBHH4sB", 0xEE, b"\x00\x00\x00", chip_id, 0, 0, 0xFFFF, b"\x00" * 4, 0)
    segment = struct.pack("<II", 0x3FFB0000, len(body)) + body
    image = header + extended + segment
    image += b"\x00" * (15 - len(image) % 16) + bytes([rom_checksum(body)])
    return image
