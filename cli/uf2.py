"""UF2 files and the drives of boards in BOOTSEL mode: data in, data out; no copying here.

A UF2 file is a run of 512-byte blocks, each carrying up to 476 bytes for one flash address:

    offset 0   magic 0x0A324655 ("UF2\\n")      offset 16  payload size (<= 476)
    offset 4   magic 0x9E5D5157                 offset 20  block number, from 0
    offset 8   flags (0x2000: family id given)  offset 24  number of blocks
    offset 12  target address                   offset 28  family id
    offset 32  data (476 bytes)                 offset 508 magic 0x0AB16F30

A board in BOOTSEL mode shows a drive with INFO_UF2.TXT, whose "Board-ID:" line says which chip it is:
RPI-RP2 (RP2040: Pico, Pico W) or RP2350 (Pico 2, Pico 2 W). Its bootrom keeps the blocks whose family id
it knows and quietly ignores the others, so a file for the wrong chip "copies" and does nothing: we check
before copying.

    image = read_uf2(data)                  # raises UF2Error with one sentence
    chip = chip_of_info(info_text)          # "RP2040" or "RP2350", None for another kind of drive
    check_family(image, chip)               # raises UF2Error when the board would ignore the file
"""

import struct
from dataclasses import dataclass

BLOCK = 512
PAYLOAD_MAX = 476
MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_NOT_MAIN_FLASH = 0x0001
FLAG_FAMILY_ID = 0x2000

RP2040 = 0xE48BFF56
ABSOLUTE = 0xE48BFF57  # RP2350: written at the address in the block, outside any partition
DATA = 0xE48BFF58  # RP2350: a data partition
RP2350_ARM_S = 0xE48BFF59
RP2350_RISCV = 0xE48BFF5A
RP2350_ARM_NS = 0xE48BFF5B
FAMILY_NAMES = {
    RP2040: "RP2040", ABSOLUTE: "RP2350 (absolute)", DATA: "RP2350 (data)", RP2350_ARM_S: "RP2350 (Arm)",
    RP2350_RISCV: "RP2350 (RISC-V)", RP2350_ARM_NS: "RP2350 (Arm, non-secure)",
}  # fmt: skip

# What each chip's bootrom writes to flash (RP2350 datasheet, "UF2 targeting rules"; the RP2040 bootrom
# knows only its own family).
ACCEPTED = {
    "RP2040": {RP2040},
    "RP2350": {RP2350_ARM_S, RP2350_RISCV, RP2350_ARM_NS, ABSOLUTE, DATA},
}
BOARD_IDS = {"RPI-RP2": "RP2040", "RP2350": "RP2350"}
BOARDS_OF_CHIP = {"RP2040": "a Pico or Pico W", "RP2350": "a Pico 2 or Pico 2 W"}


class UF2Error(Exception):
    """The file is not one the board would take; the message is one sentence for the person at the keyboard."""


@dataclass(frozen=True)
class UF2Image:
    blocks: int
    families: dict[int, int]  # family id -> how many blocks carry it
    payload: int  # bytes of flash the file writes

    @property
    def main_family(self) -> int:
        """The family most blocks carry: the program, rather than RP2350-E10's one absolute block."""
        return max(self.families, key=lambda family: (family != ABSOLUTE, self.families[family]))


def is_uf2(data: bytes) -> bool:
    return len(data) >= 8 and struct.unpack_from("<II", data) == (MAGIC_START0, MAGIC_START1)


def read_uf2(data: bytes, name: str = "the file") -> UF2Image:
    """Check every block: magics, sizes, numbering within each family, family ids present."""
    if not is_uf2(data):
        raise UF2Error(f"{name} is not a UF2 file: use the .uf2 file of MicroPython for your board.")
    if len(data) % BLOCK:
        raise UF2Error(f"{name} is cut short (its size is not a whole number of UF2 blocks): download it again.")
    runs: dict[int, list[tuple[int, int]]] = {}  # family -> [(block number, number of blocks)]
    payload = 0
    for at in range(0, len(data), BLOCK):
        start0, start1, flags, _address, size, number, count, family = struct.unpack_from("<8I", data, at)
        (end,) = struct.unpack_from("<I", data, at + BLOCK - 4)
        if (start0, start1, end) != (MAGIC_START0, MAGIC_START1, MAGIC_END) or size > PAYLOAD_MAX:
            raise UF2Error(f"{name} has a damaged block (block {at // BLOCK}): download it again.")
        if not flags & FLAG_FAMILY_ID:
            raise UF2Error(f"{name} does not say which chip it is for (no family id): use MicroPython's own file.")
        runs.setdefault(family, []).append((number, count))
        if not flags & FLAG_NOT_MAIN_FLASH:
            payload += size
    for family, numbers in runs.items():
        counts = {count for _, count in numbers}
        in_order = [number for number, _ in numbers] == list(range(len(numbers)))
        complete = counts == {len(numbers)} or (family == ABSOLUTE and len(runs) > 1)  # see main_family
        if len(counts) != 1 or not in_order or not complete:
            raise UF2Error(f"{name} is cut short or out of order (blocks missing): download it again.")
    return UF2Image(len(data) // BLOCK, {family: len(numbers) for family, numbers in runs.items()}, payload)


def chip_of_info(info: str) -> str | None:
    """The chip of a BOOTSEL drive from its INFO_UF2.TXT ("Board-ID: RPI-RP2"), None if not a Raspberry Pi one."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "board-id":
            return BOARD_IDS.get(value.strip())
    return None


def check_family(image: UF2Image, chip: str, name: str = "the file") -> None:
    """Refuse a file whose blocks the board's bootrom would ignore."""
    wanted = image.main_family
    if wanted in ACCEPTED[chip] and set(image.families) <= ACCEPTED[chip]:
        return
    made_for = FAMILY_NAMES.get(wanted, f"another chip's (UF2 family 0x{wanted:08x})")
    raise UF2Error(
        f"{name} is for {made_for} boards, but this board is an {chip} ({BOARDS_OF_CHIP[chip]}): "
        "use the firmware made for your board."
    )
