"""`sensing device flash` puts MicroPython on a board; `sensing device fetch-firmware` fills the cache while online.

    sensing device flash --board ESP32_GENERIC_S3 --port /dev/ttyUSB0     # from the cache
    sensing device flash --board ESP32_GENERIC --port rfc2217://lab-pc:4000  # plugged into another computer
    sensing device flash --firmware RPI_PICO_W-20241129-v1.24.1.uf2        # onto the Pico in BOOTSEL mode
    sensing device fetch-firmware --all

See docs/flashing.md.
"""

from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from cli import uf2
from cli.app import abort, console
from cli.firmware_images import (
    MANIFEST,
    PICO_CHIPS,
    FirmwareError,
    cached,
    esp_chip_of_image,
    fetch,
    load_manifest,
    version_in_name,
)
from cli.flash import ROM_BAUD, FlashError, check_board, copy_uf2, find_drive, flash_esp, read_uf2

FAST_BAUD = 460800  # most USB-serial adapters carry it; 115200 is the fallback

ManifestOpt = typer.Option(MANIFEST, "--manifest", help="The firmware manifest to use (default: the toolkit's own).")


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def _reporter(progress: Progress):
    tasks: dict[str, int] = {}

    def report(what: str, total: int | None, done: int) -> None:
        if what not in tasks:
            for task in tasks.values():
                progress.update(task, visible=False)
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], total=total, completed=done)

    return report


def _firmware(firmware: Path | None, board: str | None, version: str | None, manifest: Path):
    """(data, file name, MicroPython version or None, (board, chip) or None)."""
    try:
        known = load_manifest(manifest)
        board_chip = (board, known.chip(board)) if board else None
        if firmware is not None:
            return firmware.read_bytes(), firmware.name, version_in_name(firmware.name), board_chip
        if board is None:
            abort("Say which board with --board (e.g. RPI_PICO_W, ESP32_GENERIC_S3), or give a file with --firmware.")
        image = known.image(board, version)
        return cached(image).read_bytes(), image.file, image.version, board_chip
    except FirmwareError as e:
        abort(str(e))


def flash(
    board: str = typer.Option(
        None, "--board", "-b", help="The board's MicroPython name: RPI_PICO_W, ESP32_GENERIC_S3, ..."
    ),
    firmware: Path = typer.Option(
        None,
        "--firmware",
        "-f",
        help="A firmware file (.uf2 or .bin) instead of the cached one.",
        exists=True,
        dir_okay=False,
    ),
    version: str = typer.Option(
        None, "--version", help="The MicroPython version from the cache (default: the newest)."
    ),
    port: str = typer.Option(
        None,
        "--port",
        "-p",
        envvar="SENSING_PORT",
        help="The board's serial port (ESP32, or rfc2217://HOST:PORT on another computer; a Pico running MicroPython).",
    ),
    drive: Path = typer.Option(
        None, "--drive", help="Where the Pico's BOOTSEL drive is mounted, if not found by itself."
    ),
    baud: int = typer.Option(FAST_BAUD, "--baud", help="The line rate for writing an ESP32; 115200 if it fails."),
    reset: bool = typer.Option(
        True,
        "--reset/--no-reset",
        help="Reset the ESP32 into its bootloader with DTR/RTS (--no-reset: BOOT held).",
    ),
    stub: bool = typer.Option(True, "--stub/--no-stub", help="Use esptool's flasher stub (--no-stub: the ROM only)."),
    manifest: Path = ManifestOpt,
) -> None:
    """Put MicroPython on a board: an ESP32 at a serial port, or a Pico through its BOOTSEL drive."""
    data, name, mp_version, board_chip = _firmware(firmware, board, version, manifest)
    what = f"MicroPython {mp_version}" if mp_version else name
    for_pico = board_chip[1] in PICO_CHIPS if board_chip else uf2.is_uf2(data) or esp_chip_of_image(data) is None
    with _progress() as progress:
        report = _reporter(progress)
        try:
            if for_pico:
                image = read_uf2(data, name)  # a bad file is told before anything is asked of the board
                target = find_drive(drive, port, report)
                check_board(image, name, target, board_chip)
                copy_uf2(data, name, target, report)
            else:
                if port is None:
                    abort("Say which serial port the ESP32 is on with --port, e.g. /dev/ttyUSB0.")
                done = flash_esp(port, data, name, board_chip, baud, reset, stub, report)
        except FlashError as e:
            abort(str(e))
    if for_pico:
        console.print(f"✓ {what} copied to the {target.chip} board at {target.path}: "
                      "it restarts into MicroPython by itself.", highlight=False)  # fmt: skip
        return
    if done.fell_back:
        console.print(f"  The line did not carry {baud} baud, so it was written at {ROM_BAUD}.", highlight=False)
    console.print(f"✓ {what} written to the {done.chip} on {port} (verified).", highlight=False)
    if reset and not done.restarted:  # the port has no DTR/RTS (or the board no reset circuit)
        console.print("  Its port could not restart it: press its reset button (EN or RST) to start MicroPython.",
                      highlight=False)  # fmt: skip


def fetch_firmware(
    board: list[str] = typer.Option(None, "--board", "-b", help="A board's MicroPython name (repeat for more)."),
    every: bool = typer.Option(False, "--all", help="The newest firmware of every board in the manifest."),
    version: str = typer.Option(None, "--version", help="This MicroPython version (default: the newest)."),
    manifest: Path = ManifestOpt,
) -> None:
    """Download firmware into the cache while online, checked against the manifest, for flashing offline."""
    try:
        known = load_manifest(manifest)
        boards = known.board_names() if every else list(board or [])
        if not boards:
            abort("Say which boards with --board (repeat it), or --all.")
        images = [known.image(name, None if every else version) for name in boards]
    except FirmwareError as e:
        abort(str(e))
    unchecked = [image.label for image in images if image.sha256 is None]
    if unchecked and len(images) > 1:
        abort(f"The manifest has no checksum for {', '.join(unchecked)}, so nothing was downloaded: "
              "add the sha256 of files you checked to the manifest (see docs/flashing.md).")  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    for image in images:
        try:
            with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
                task = progress.add_task(f"Downloading {image.file}", total=None)
                path, downloaded = fetch(
                    image, lambda done, total, task=task: progress.update(task, completed=done, total=total)
                )
        except FirmwareError as e:
            abort(str(e))
        state = "downloaded into" if downloaded else "already in"
        console.print(f"✓ {image.label}: {state} the cache ({path.name}).", highlight=False)
