"""What esptool's flasher stub answers once it runs on the simulated chip (tests/boards/esp_rom.py).

esptool 5 uploads esp-flasher-stub (the JSON files in esptool/targets/stub_flasher/2/) into the chip's RAM with
the ROM's MEM_BEGIN / MEM_DATA / MEM_END and jumps to its entry point. The simulated chip cannot execute it, so
it recognises it: when MEM_END jumps to the entry point that JSON names, and the RAM holds the JSON's text and
data segments at the JSON's addresses, the chip answers as that stub from then on; anything else in RAM, or
another entry point, leaves the chip silent, as a chip running garbage would be.

The stub answers differently from the ROM (Espressif's "Serial Protocol" document, and the stub's own sources):
two status bytes, a 16-bit big-endian code (0xC000 bad length, 0xC100 bad checksum, 0xC300 unknown command,
0xC600 not writing, 0xC700 inflate error, 0xC900 too much data, 0xFF00 not implemented); SYNC with the value 0;
the MD5 of flash as 16 raw bytes; FLASH_BEGIN / FLASH_DEFL_BEGIN take the exact byte count and erase as they
write; a write or decompression error found after a block was acknowledged is told in the answer to the next
command. Only the commands esptool sends on `sensing device flash`'s path are modelled: READ_FLASH,
ERASE_REGION, MEM_* and the NAND commands answer "unknown command" here, though the real stub has them.
"""

import base64
import json
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import esptool

STUB_JSON = Path(esptool.__file__).parent / "targets" / "stub_flasher" / "2"

# What each way a command can be refused is called on the wire.
STUB_STATUS = {
    "bad length": 0xC000, "checksum": 0xC100, "unknown command": 0xC300, "failed": 0xC400, "not writing": 0xC600,
    "inflate": 0xC700, "too much data": 0xC900, "not supported": 0xFF00,
}  # fmt: skip


class Refused(Exception):
    """A loader refuses a command; `kind` is a key of STUB_STATUS (the ROM has its own codes for them)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class Stub:
    entry: int
    text_start: int
    text: bytes
    data_start: int
    data: bytes


@cache
def esptool_stub(chip: str) -> Stub:
    """The flasher stub esptool uploads to `chip` (esp32, esp32s3, ...), from its JSON file."""
    found = json.loads((STUB_JSON / f"{chip}.json").read_text())
    return Stub(found["entry"], found["text_start"], base64.b64decode(found["text"]), found["data_start"],
                base64.b64decode(found["data"]))  # fmt: skip


class FlasherStub:
    """The stub's commands, as methods of the simulated chip (EspChip), which keeps the flash and the registers.
    Commands both loaders answer alike (READ_REG, WRITE_REG, SPI_SET_PARAMS, GET_SECURITY_INFO, CHANGE_BAUDRATE)
    are the chip's own."""

    def _stub_sync(self, data: bytes, checksum: int):
        if len(data) != 36:
            raise Refused("bad length")
        for _ in range(8):  # as many answers as the ROM gives, but with the value 0: how esptool tells a stub
            self._reply(0x08)

    def _stub_spi_attach(self, data: bytes, checksum: int):
        if len(data) != 4:  # the ROM's extra "legacy" word is not the stub's
            raise Refused("bad length")
        return 0, b""

    def _stub_flash_begin(self, data: bytes, checksum: int, compressed: bool = False):
        if len(data) not in (16, 20):
            raise Refused("bad length")
        size, blocks, block_size, offset = self._words(data, 4)
        if offset + size > len(self.flash):
            raise Refused("failed")
        self._writing = {"at": offset, "left": size, "erased": offset, "inflate": None}
        if compressed:
            self._writing["inflate"] = zlib.decompressobj()
        return 0, b""

    def _stub_flash_defl_begin(self, data: bytes, checksum: int):
        return self._stub_flash_begin(data, checksum, compressed=True)

    def _stub_flash_data(self, data: bytes, checksum: int):
        block = self._stub_block(data, checksum, compressed=False)
        self._reply(0x03)  # acknowledged first; written while the next block comes in
        self._stub_write(block[: self._writing["left"]])

    def _stub_flash_defl_data(self, data: bytes, checksum: int):
        block = self._stub_block(data, checksum, compressed=True)
        self._reply(0x11)
        try:
            out = self._writing["inflate"].decompress(block)
        except zlib.error:
            self._deferred = "inflate"
            return
        if len(out) > self._writing["left"]:
            self._deferred = "too much data"
            return
        self._stub_write(out)

    def _stub_block(self, data: bytes, checksum: int, compressed: bool) -> bytes:
        if len(data) < 16:
            raise Refused("bad length")
        if self._writing is None or (self._writing["inflate"] is not None) != compressed:
            raise Refused("not writing")
        (size,) = self._words(data, 1)
        block = data[16:]
        if size != len(block):
            raise Refused("too much data")
        if self._xor(block) != checksum:
            raise Refused("checksum")
        return block

    def _stub_write(self, data: bytes) -> None:
        writing = self._writing
        end = writing["at"] + len(data)
        if end > writing["erased"]:  # erased just in time, whole sectors, as the stub does
            writing["erased"] = self._erase(writing["erased"], end)
        self._program(writing["at"], data)
        writing["at"] = end
        writing["left"] -= len(data)

    def _stub_flash_end(self, data: bytes, checksum: int):
        if len(data) != 4:
            raise Refused("bad length")
        if self._writing is None:
            raise Refused("not writing")
        if self._writing["left"]:
            raise Refused("bad length")  # fewer bytes came than FLASH_BEGIN announced
        self._writing = None  # the reboot flag is ignored: esp-flasher-stub does not reboot here
        return 0, b""

    def _stub_flash_defl_end(self, data: bytes, checksum: int):
        return self._stub_flash_end(data, checksum)

    def _stub_spi_flash_md5(self, data: bytes, checksum: int):
        if len(data) != 16:
            raise Refused("bad length")
        return 0, self._md5(*self._words(data, 2))

    def _stub_erase_flash(self, data: bytes, checksum: int):
        self._erase(0, len(self.flash))
        return 0, b""
