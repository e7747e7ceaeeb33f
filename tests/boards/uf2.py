"""Picos in BOOTSEL mode, for tests: UF2 files built here, folders that look like their drives, and a boot
script that gives the simulated board a `machine.bootloader()` which shows such a drive.

    data = uf2_file(RP2040, blocks=20)                     # a valid UF2 for a Pico (W)
    drive = bootsel_drive(tmp_path / "RPI-RP2", "RP2040")  # INFO_UF2.TXT as a Pico's bootrom writes it
    (board.root / "boot.py").write_text(bootloader_boot_script(tmp_path / "RP2350", "RP2350"))
"""

import struct
from pathlib import Path

MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FAMILY_ID_PRESENT = 0x2000
EXTENSION_TAGS = 0x8000
RP2040, ABSOLUTE, RP2350_ARM_S, RP2350_RISCV = 0xE48BFF56, 0xE48BFF57, 0xE48BFF59, 0xE48BFF5A
FLASH_START = 0x10000000
PAYLOAD = 256  # what picotool and MicroPython's build put in each block

INFO = {
    "RP2040": "UF2 Bootloader v3.0\r\nModel: Raspberry Pi RP2\r\nBoard-ID: RPI-RP2\r\n",
    "RP2350": "UF2 Bootloader v1.0\r\nModel: Raspberry Pi RP2350\r\nBoard-ID: RP2350\r\n",
}


def uf2_block(family: int, number: int, count: int, address: int, data: bytes, flags: int = FAMILY_ID_PRESENT):
    header = struct.pack("<8I", MAGIC_START0, MAGIC_START1, flags, address, len(data), number, count, family)
    return header + data.ljust(476, b"\x00") + struct.pack("<I", MAGIC_END)


def uf2_file(family: int, blocks: int = 16, e10_block: bool = False) -> bytes:
    """`blocks` blocks of program for `family`; with e10_block, first the one absolute-family block that
    RP2350 builds carry (RP2350-E10 workaround), numbered as its own file of two."""
    out = b""
    if e10_block:
        out += uf2_block(ABSOLUTE, 0, 2, 0x10FFFF00, b"\xef" * PAYLOAD, FAMILY_ID_PRESENT | EXTENSION_TAGS)
    for n in range(blocks):
        payload = bytes((n + i) % 251 for i in range(PAYLOAD))
        out += uf2_block(family, n, blocks, FLASH_START + n * PAYLOAD, payload)
    return out


def bootsel_drive(path: Path, chip: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "INDEX.HTM").write_text("<html>Redirecting to raspberrypi.com</html>\n")
    (path / "INFO_UF2.TXT").write_text(INFO[chip], newline="")
    return path


def bootloader_boot_script(drive: Path, chip: str) -> str:
    """A /boot.py for the simulated board: machine.bootloader() makes `drive` appear, as a Pico's drive does
    when it restarts into BOOTSEL, and then the board stops answering (its serial port would be gone)."""
    return f"""\
import machine


def _bootloader():
    import os
    import time

    os.mount(os.VfsPosix({str(drive.parent)!r}), "/_host")
    os.mkdir("/_host/{drive.name}")
    with open("/_host/{drive.name}/INFO_UF2.TXT", "w") as f:
        f.write({INFO[chip]!r})
    while True:
        time.sleep(1)


machine.bootloader = _bootloader
"""
