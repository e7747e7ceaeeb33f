"""MicroPython firmware images: which file a board needs, where it is cached, and what kind of image a file is.

The manifest (cli/firmware_manifest.json) lists, per MicroPython board name, the chip and per version the
file name, where micropython.org publishes it, and its sha256. The cache is a folder of those files:
$SENSING_CACHE_DIR/firmware, or ~/.cache/citizen-sensing/firmware. `fetch` fills it while online; a download
whose sha256 differs from the manifest's is deleted, and an entry without a sha256 is never downloaded.

    manifest = load_manifest()
    image = manifest.image("RPI_PICO_W")          # the newest version; FirmwareError if unknown
    path = cached(image)                          # the checked file in the cache, or FirmwareError
    fetch(image, on_progress)                     # download into the cache, checked
"""

import hashlib
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

MANIFEST = Path(__file__).with_name("firmware_manifest.json")
DOWNLOAD_TIMEOUT = 60  # seconds without a byte before a download gives up

ESP_IMAGE_MAGIC = 0xE9
# ESP32-family chips: the chip id in an application image's extended header (byte 12, little-endian
# 16 bits) and where MicroPython's single .bin goes in flash (its bootloader's place).
ESP_CHIPS = {
    "ESP32": (0, 0x1000),
    "ESP32-S2": (2, 0x1000),
    "ESP32-S3": (9, 0x0),
    "ESP32-C3": (5, 0x0),
    "ESP32-C6": (13, 0x0),
}
PICO_CHIPS = ("RP2040", "RP2350")


class FirmwareError(Exception):
    """One sentence for the person at the keyboard."""


@dataclass(frozen=True)
class Image:
    board: str
    chip: str
    version: str
    file: str
    url: str
    sha256: str | None

    @property
    def label(self) -> str:
        return f"MicroPython {self.version} for {self.board}"


@dataclass(frozen=True)
class Manifest:
    boards: dict

    def board_names(self) -> list[str]:
        return sorted(self.boards)

    def chip(self, board: str) -> str:
        return self._board(board)["chip"]

    def image(self, board: str, version: str | None = None) -> Image:
        versions = self._board(board)["versions"]
        if version is None:
            version = max(versions, key=version_key)
        if version not in versions:
            known = ", ".join(sorted(versions, key=version_key))
            raise FirmwareError(f"The manifest has no MicroPython {version} for {board} (it has {known}).")
        entry = versions[version]
        return Image(board, self.chip(board), version, entry["file"], entry["url"], entry.get("sha256"))

    def _board(self, board: str) -> dict:
        if board not in self.boards:
            known = ", ".join(self.board_names())
            raise FirmwareError(f"No firmware is known for the board {board}: use one of {known}.")
        return self.boards[board]


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def load_manifest(path: Path = MANIFEST) -> Manifest:
    try:
        return Manifest(json.loads(Path(path).read_text())["boards"])
    except (OSError, ValueError, KeyError, TypeError):
        raise FirmwareError(f"The firmware manifest {path} cannot be read: see cli/firmware_manifest.json.") from None


def cache_dir() -> Path:
    root = os.environ.get("SENSING_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "citizen-sensing") / "firmware"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached(image: Image) -> Path:
    """The image's file in the cache, checked against the manifest's sha256."""
    path = cache_dir() / image.file
    if image.sha256 is None:
        raise FirmwareError(
            f"The manifest has no checksum for {image.label}, so it is not taken from the cache: "
            f"download {image.url} yourself and give it with --firmware."
        )
    if not path.is_file():
        raise FirmwareError(
            f"{image.label} is not in the cache ({cache_dir()}): run `sensing device fetch-firmware "
            f"--board {image.board}` while online, or give a file with --firmware."
        )
    if sha256_of(path) != image.sha256:
        raise FirmwareError(f"The cached {path.name} does not match its checksum: fetch it again.")
    return path


def fetch(image: Image, on_progress: Callable[[int, int | None], None] | None = None) -> tuple[Path, bool]:
    """Download the image into the cache unless it is there already; (path, downloaded)."""
    if image.sha256 is None:
        raise FirmwareError(
            f"The manifest has no checksum for {image.label}, so it cannot be downloaded safely: "
            f"download {image.url} yourself, check it, and give it with --firmware."
        )
    folder = cache_dir()
    path = folder / image.file
    if path.is_file() and sha256_of(path) == image.sha256:
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (image.file + ".part")
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", image.url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT) as response:
            response.raise_for_status()
            total = int(response.headers["content-length"]) if "content-length" in response.headers else None
            done = 0
            with open(partial, "wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
    except (httpx.HTTPError, OSError) as e:
        partial.unlink(missing_ok=True)
        raise FirmwareError(
            f"{image.url} could not be downloaded ({_why(e)}): check the connection and try again."
        ) from None
    if digest.hexdigest() != image.sha256:
        partial.unlink(missing_ok=True)
        raise FirmwareError(
            f"The download of {image.file} does not match the checksum in the manifest, so it was not kept."
        )
    partial.replace(path)
    return path, True


def _why(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"the server answered {error.response.status_code}"
    return type(error).__name__ if not str(error) else str(error).rstrip(".")


# ------------------------------------------------------------------------------------------- image kinds


def esp_chip_of_image(data: bytes) -> str | None:
    """The chip an ESP application image is built for, from its header; None if it is not one."""
    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        return None
    (chip_id,) = struct.unpack_from("<H", data, 12)
    return next((chip for chip, (known, _) in ESP_CHIPS.items() if known == chip_id), f"chip id {chip_id}")


def version_in_name(name: str) -> str | None:
    """MicroPython's files are named like ESP32_GENERIC_S3-20241129-v1.24.1.bin."""
    found = re.search(r"v(\d+\.\d+(?:\.\d+)?)", name)
    return found.group(1) if found else None
