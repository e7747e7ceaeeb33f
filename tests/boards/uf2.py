"""Picos in BOOTSEL mode, for tests: UF2 files built here, folders that look like their drives, and what a Pico's
bootrom makes of a file copied onto its drive (the simulated board's BOOTSEL round trip uses it).

    data = uf2_file(RP2040, blocks=20, version="1.25.0")   # a valid UF2 for a Pico (W), MicroPython 1.25.0 in it
    drive = bootsel_drive(tmp_path / "RPI-RP2", "RP2040")   # INFO_UF2.TXT as a Pico's bootrom writes it
    image = written(data, "RP2040")                         # the flash written, or None: the bootrom waits on
    micropython_version(image)                              # "1.25.0", from the banner inside the image

Built independently of cli/uf2.py, from the UF2 specification and the RP2350 datasheet, so the CLI's reading
is checked against another reading of the same format.
"""

import re
import struct
from pathlib import Path

MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FAMILY_ID_PRESENT = 0x2000
NOT_MAIN_FLASH = 0x0001
EXTENSION_TAGS = 0x8000
RP2040, ABSOLUTE, RP2350_ARM_S, RP2350_RISCV = 0xE48BFF56, 0xE48BFF57, 0xE48BFF59, 0xE48BFF5A
RP2350_DATA, RP2350_ARM_NS = 0xE48BFF58, 0xE48BFF5B
# The families each chip's bootrom writes; blocks of any other family it skips without a word.
WRITES = {"RP2040": {RP2040}, "RP2350": {ABSOLUTE, RP2350_DATA, RP2350_ARM_S, RP2350_RISCV, RP2350_ARM_NS}}
FLASH_START = 0x10000000
PAYLOAD = 256  # what picotool and MicroPython's build put in each block

INFO = {
    "RP2040": "UF2 Bootloader v3.0\r\nModel: Raspberry Pi RP2\r\nBoard-ID: RPI-RP2\r\n",
    "RP2350": "UF2 Bootloader v1.0\r\nModel: Raspberry Pi RP2350\r\nBoard-ID: RP2350\r\n",
}
DRIVE_NAMES = {"RP2040": "RPI-RP2", "RP2350": "RP2350"}  # the drive's volume label, where desktops mount it


def uf2_block(family: int, number: int, count: int, address: int, data: bytes, flags: int = FAMILY_ID_PRESENT):
    header = struct.pack("<8I", MAGIC_START0, MAGIC_START1, flags, address, len(data), number, count, family)
    return header + data.ljust(476, b"\x00") + struct.pack("<I", MAGIC_END)


def uf2_file(family: int, blocks: int = 16, e10_block: bool = False, version: str | None = None) -> bytes:
    """`blocks` blocks of program for `family`; with e10_block, first the one absolute-family block that
    RP2350 builds carry (RP2350-E10 workaround), numbered as its own file of two. With `version`, the program
    holds MicroPython's banner for that version, as a real build's flash image does."""
    out = b""
    if e10_block:
        out += uf2_block(ABSOLUTE, 0, 2, 0x10FFFF00, b"\xef" * PAYLOAD, FAMILY_ID_PRESENT | EXTENSION_TAGS)
    banner = f"MicroPython v{version} on 2025-04-15; Raspberry Pi Pico".encode() if version else b""
    for n in range(blocks):
        payload = bytes((n + i) % 251 for i in range(PAYLOAD))
        if n == blocks // 2 and banner:
            payload = banner + payload[len(banner) :]
        out += uf2_block(family, n, blocks, FLASH_START + n * PAYLOAD, payload)
    return out


def bootsel_drive(path: Path, chip: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "INDEX.HTM").write_text("<html>Redirecting to raspberrypi.com</html>\n")
    (path / "INFO_UF2.TXT").write_text(INFO[chip], newline="")
    return path


def written(data: bytes, chip: str) -> bytes | None:
    """What the bootrom of `chip` has written once `data` (a file copied onto its drive, maybe still being
    copied) is in: the payloads of a whole run of blocks of a family it writes, in address order; None until
    every block of such a run has arrived (it then restarts the board)."""
    runs: dict[tuple[int, int], dict[int, tuple[int, bytes]]] = {}
    for at in range(0, len(data) - len(data) % 512, 512):
        start0, start1, flags, address, size, number, count, family = struct.unpack_from("<8I", data, at)
        (end,) = struct.unpack_from("<I", data, at + 508)
        if (start0, start1, end) != (MAGIC_START0, MAGIC_START1, MAGIC_END) or flags & NOT_MAIN_FLASH:
            continue
        if not flags & FAMILY_ID_PRESENT or family not in WRITES[chip] or size > 476 or number >= count:
            continue
        runs.setdefault((family, count), {})[number] = (address, data[at + 32 : at + 32 + size])
    for (_, count), blocks in runs.items():
        if len(blocks) == count:
            return b"".join(payload for _, payload in sorted(blocks.values()))
    return None


def micropython_version(image: bytes) -> str | None:
    """The version in MicroPython's banner inside a flash image ("MicroPython v1.25.0 on ...")."""
    found = re.search(rb"MicroPython v(\d+\.\d+\.\d+)", image)
    return found.group(1).decode() if found else None
