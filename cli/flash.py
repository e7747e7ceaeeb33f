"""Putting MicroPython on a board: ESP32-family chips through esptool, Picos through their BOOTSEL drive.

Every failure is a FlashError carrying one sentence; the command turns it into `abort`.

ESP32 family (esptool's Python API, esptool.cmds): detect the chip, check the image's chip id against it,
load esptool's flasher stub (unless stub=False: then only the chip's ROM loader is used), raise the line
rate and fall back to 115200 if the line cannot carry it, erase the whole flash, write the image at the
chip's offset, verify it by MD5, reset. With reset=False the board must already be in its bootloader
(BOOT held at power-up) and DTR/RTS are left alone, before and after. The port may be on another computer,
as rfc2217://HOST:PORT, served there by esptool's esp_rfc2217_server.

Pico (RP2040, RP2350): check the UF2 file's blocks and family against the chip the drive names in its
INFO_UF2.TXT, then copy it onto the drive; the board writes it to flash and restarts by itself. A Pico
running MicroPython at a serial port is first sent to BOOTSEL with machine.bootloader().
"""

import contextlib
import glob
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import esptool.cmds
import esptool.reset
from esptool.cmds import (
    attach_flash,
    detect_chip,
    detect_flash_size,
    erase_flash,
    reset_chip,
    run_stub,
    verify_flash,
    write_flash,
)
from esptool.loader import DEFAULT_TIMEOUT
from esptool.logger import EspLog, TemplateLogger, log
from esptool.util import FatalError, NotImplementedInROMError, flash_size_bytes
from serial import SerialException

from cli import uf2
from cli.board import BoardError, connected, why_not_open
from cli.firmware_images import ESP_CHIPS, esp_chip_of_image

ROM_BAUD = 115200  # what every ESP ROM loader starts at
CONNECT_ATTEMPTS = 4
LEAVING_RESET = 0.1  # seconds from a hard reset until the chip runs: esptool's own waits around a reset are such
DRIVE_SEARCH = ("/media/*/*", "/run/media/*/*", "/Volumes/*")  # where desktops mount a USB drive
DRIVE_WAIT = 20  # seconds for a Pico sent to BOOTSEL to show its drive
INFO_FILE = "INFO_UF2.TXT"
COPY_CHUNK = 64 * 1024


class FlashError(Exception):
    """Flashing failed; the message is one sentence for the person at the keyboard."""


class NotInLoader(FlashError):
    """Nothing answered like an ESP32's loader at the port: a board esptool could not reset into it (no DTR/RTS
    circuit, or running its firmware with --no-reset), or no ESP32 at all."""


Progress = Callable[[str, int | None, int], None]  # (what is happening, total or None, done so far)


# ------------------------------------------------------------------------------------------- ESP32 family


@dataclass(frozen=True)
class EspResult:
    chip: str
    offset: int
    baud: int  # the rate the image was written at
    fell_back: bool  # the asked-for rate failed and 115200 was used
    restarted: bool  # reset into the new MicroPython at the end (False: --no-reset, or a port without DTR/RTS)


NOT_RESET = "Chip was NOT reset"  # esptool's warning when the port refuses DTR/RTS (a pty, some drivers)


class _EsptoolOutput(TemplateLogger):
    """esptool's messages are kept (not printed); its progress bars drive ours."""

    def __init__(self, on_bar: Callable[[int, int], None]):
        self.on_bar = on_bar
        self.lines: list[str] = []

    def print(self, *args, **kwargs):
        self.lines.append(" ".join(str(arg) for arg in args))

    def note(self, message):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append(message)

    def error(self, message):
        self.lines.append(message)

    def stage(self, finish=False):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        self.on_bar(cur_iter, total_iters)

    def set_verbosity(self, verbosity):
        pass

    @property
    def not_reset(self) -> bool:
        """Whether esptool found it could not reset the chip (its port has no DTR/RTS)."""
        return any(NOT_RESET in line for line in self.lines)


class _EsptoolOutputs(TemplateLogger):
    """esptool's logger while this module flashes: each thread's messages go to the _EsptoolOutput of the flash
    it runs (boards are flashed in parallel at a workshop, and esptool's logger is one for the process); any
    other's are dropped."""

    def __init__(self):
        self.here = threading.local()

    def _output(self) -> TemplateLogger:
        return getattr(self.here, "output", None) or _EsptoolOutput(lambda done, total: None)

    def print(self, *args, **kwargs):
        self._output().print(*args, **kwargs)

    def note(self, message):
        self._output().note(message)

    def warning(self, message):
        self._output().warning(message)

    def error(self, message):
        self._output().error(message)

    def stage(self, finish=False):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        self._output().progress_bar(cur_iter, total_iters, prefix, suffix, bar_length)

    def set_verbosity(self, verbosity):
        pass


class _SaidNow:
    """Stands in for esptool's PrintOnce objects made when it was imported: they hold the logger esptool had
    then, which prints to the terminal (the warning that a port cannot reset the chip came out raw that way).
    This one says each message to the logger of the moment, every time: each flash hears of it."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, text: str) -> None:
        getattr(log, self.kind)(text)


_OUTPUTS = _EsptoolOutputs()
_flashing = {"count": 0, "before": None}  # flashes running now; esptool's logger and warnings before the first
_flashing_lock = threading.Lock()


def _install() -> None:
    """esptool's output goes to _OUTPUTS while any flash runs: the first to start installs it, the last to end
    puts esptool's own back (a flash ending while another runs must not give that one esptool's printer)."""
    with _flashing_lock:
        if _flashing["count"] == 0:
            _flashing["before"] = (EspLog.instance, esptool.reset.ResetStrategy.print_once,
                                   esptool.cmds._warn_nand_experimental)  # fmt: skip
            log.set_logger(_OUTPUTS)
            esptool.reset.ResetStrategy.print_once = _SaidNow("warn")
            esptool.cmds._warn_nand_experimental = _SaidNow("warn")
        _flashing["count"] += 1


def _uninstall() -> None:
    with _flashing_lock:
        _flashing["count"] -= 1
        if _flashing["count"] == 0:
            EspLog.instance, esptool.reset.ResetStrategy.print_once, esptool.cmds._warn_nand_experimental = (
                _flashing["before"])  # fmt: skip


@contextlib.contextmanager
def _esptool_quiet(on_bar: Callable[[int, int], None]) -> Iterator[_EsptoolOutput]:
    """esptool's messages and progress, in this thread, kept in the _EsptoolOutput yielded."""
    output = _EsptoolOutput(on_bar)
    _install()
    _OUTPUTS.here.output = output
    try:
        yield output
    finally:
        _OUTPUTS.here.output = None
        _uninstall()


def _remote(port: str) -> bool:
    return port.startswith("rfc2217://")


def _esptool_port(port: str) -> str:
    """The port as esptool opens it. esp_rfc2217_server answers no DTR/RTS change (it resets the board itself,
    next to it, when one asks for the bootloader), so pyserial must not wait for answers (its ign_set_control);
    servers that do answer are not harmed by that."""
    if not _remote(port):
        return port
    parts = urllib.parse.urlsplit(port)
    if "ign_set_control" in urllib.parse.parse_qs(parts.query, keep_blank_values=True):
        return port
    return urllib.parse.urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, "ign_set_control"]))))


def _connect(port: str, before: str):
    try:
        esp = detect_chip(_esptool_port(port), ROM_BAUD, connect_mode=before, connect_attempts=CONNECT_ATTEMPTS)
        # esptool sets the port's timeout around each command and leaves it unset between them, so its wait for
        # the stub's greeting never ends if the stub does not start; and on an RFC 2217 port each change of it
        # renegotiates all the port's settings (0.15 s or more), twice a command. The timeout most commands
        # use, made the port's own, mends both.
        esp._port.timeout = DEFAULT_TIMEOUT
        return esp
    except (FatalError, SerialException, OSError) as e:
        if "Could not open" in str(e) and _remote(port):
            raise FlashError(
                f"Nothing answers at {port}: start esp_rfc2217_server on the computer the board is plugged into, "
                "and check the host name and port number."
            ) from None
        if "Could not open" in str(e):
            raise FlashError(why_not_open(port)) from None
        if _remote(port):
            raise NotInLoader(
                f"The board at {port} does not answer like an ESP32 in its bootloader: serve its port with "
                "esp_rfc2217_server (it resets the board into its bootloader), or hold its BOOT button while "
                "pressing RESET, and try again."
            ) from None
        raise NotInLoader(
            f"The board at {port} does not answer like an ESP32 in its bootloader: hold its BOOT button, "
            "press and release RESET, let go of BOOT, and try again."
        ) from None


def _run_stub(esp, port: str, options: bool):
    """esptool's flasher stub, uploaded into the chip's RAM and started; it then answers instead of the ROM."""
    try:
        return run_stub(esp)
    except FatalError:
        if not options:
            raise FlashError(f"The {esp.CHIP_NAME} at {port} did not start esptool's flasher stub: unplug it, "
                             "plug it in again, and try again.") from None  # fmt: skip
        raise FlashError(
            f"The {esp.CHIP_NAME} at {port} did not start esptool's flasher stub: try again, or flash with "
            "--no-stub (slower: the chip's ROM loader only)."
        ) from None


def _at_fast_rate(esp, port: str, before: str, baud: int, stub: bool, options: bool):
    """The loader at `baud`, or at 115200 again (reconnected, so reset) if the line cannot carry `baud`."""
    if baud == ROM_BAUD:
        return esp, False
    try:
        esp.change_baud(baud)
        esp.read_reg(esp.CHIP_DETECT_MAGIC_REG_ADDR)  # any answer at all says the new rate works
        return esp, False
    except (FatalError, SerialException, OSError):
        esp._port.close()
    esp = _connect(port, before)
    return (_run_stub(esp, port, options) if stub else esp), True


def _erase_all(esp) -> None:
    try:
        erase_flash(esp)  # the stub's ERASE_FLASH
    except NotImplementedInROMError:
        # The ROM loader has no chip erase: FLASH_BEGIN erases the region it is given, here all of it.
        esp.flash_begin(flash_size_bytes(detect_flash_size(esp) or "4MB"), 0, logging=False)


def flash_esp(
    port: str, data: bytes, name: str, board_chip: tuple[str, str] | None, baud: int, reset: bool, stub: bool,
    progress: Progress, options: bool = True,
) -> EspResult:  # fmt: skip
    """Write `data` (a MicroPython .bin) to the ESP32-family board at `port`; `board_chip` is (board, chip).
    `options`: whether a failure's sentence may name `sensing device flash`'s options (--board, --baud,
    --no-stub); `sensing workshop run` has none of them."""
    image_chip = esp_chip_of_image(data)
    if image_chip is None:
        raise FlashError(f"{name} is not an ESP32 firmware image: use the .bin file of MicroPython for your board.")
    if port.startswith("socket://"):
        raise FlashError(
            f"{port} is a raw network port, which can neither reset the board nor change the line rate: serve "
            "the board with esp_rfc2217_server and give its port as rfc2217://HOST:PORT."
        )
    if not _remote(port) and not os.path.exists(port):
        raise FlashError(f"There is no board at {port}: check that it is plugged in and that the port is right.")
    before = "default-reset" if reset else "no-reset"
    step = {"what": ""}
    with _esptool_quiet(lambda done, total: progress(step["what"], total, done)) as said:
        progress(f"Connecting to {port}", None, 0)
        esp = _connect(port, before)
        try:
            chip = esp.CHIP_NAME
            try:
                _check_esp_chip(port, chip, image_chip, name, board_chip, options)
            except FlashError:
                if reset:  # reset into its loader for nothing: back to what it ran, as it was
                    reset_chip(esp, "hard-reset")
                raise
            if stub:
                esp = _run_stub(esp, port, options)
            esp, fell_back = _at_fast_rate(esp, port, before, baud, stub, options)
            attach_flash(esp)
            progress(f"Erasing the {chip}'s flash", None, 0)
            _erase_all(esp)
            offset = ESP_CHIPS[chip][1]
            step["what"] = f"Writing to the {chip}"
            write_flash(esp, [(offset, data)])  # checks the MD5 of what it wrote
            progress("Verifying", None, 0)
            verify_flash(esp, [(offset, data)])
            reset_chip(esp, "hard-reset" if reset else "no-reset")
            return EspResult(chip, offset, esp._port.baudrate, fell_back, reset and not said.not_reset)
        except FatalError as e:
            if "Verification failed" in str(e) or "MD5" in str(e) or "flash region is empty" in str(e):
                way = "with --baud 115200 or another USB cable" if options else "with another USB cable"
                raise FlashError(
                    f"The {esp.CHIP_NAME} at {port} does not hold what was written (the check after writing "
                    f"failed): try again {way}."
                ) from None
            raise FlashError(_stopped(esp.CHIP_NAME, port)) from None
        except (SerialException, OSError):
            raise FlashError(_stopped(esp.CHIP_NAME, port)) from None
        finally:
            with contextlib.suppress(OSError, SerialException):
                esp._port.close()


def esp_chip_at(port: str) -> str:
    """The chip of the ESP32-family board at the local `port` (ESP32-S3, ...), asked of its ROM loader: reset into
    it with DTR/RTS, and reset out of it again (a hard reset), so the board runs what it ran before. FlashError
    if no ESP32 answers in its loader."""
    with _esptool_quiet(lambda done, total: None):
        esp = _connect(port, "default-reset")
        try:
            chip = esp.CHIP_NAME
            reset_chip(esp, "hard-reset")
            # The chip leaves reset a moment after EN rises (a DevKit's RC delay, about 10 ms): a port opened
            # before then asserts DTR, which pulls IO0 low, and it would start its loader again, or never start.
            time.sleep(LEAVING_RESET)
            return chip
        finally:
            with contextlib.suppress(OSError, SerialException):
                esp._port.close()


def _check_esp_chip(port: str, chip: str, image_chip: str, name: str, board_chip: tuple[str, str] | None,
                    options: bool) -> None:  # fmt: skip
    if chip not in ESP_CHIPS:
        raise FlashError(f"The board at {port} is an {chip}, which this toolkit does not flash.")
    if board_chip is not None and board_chip[1] != chip:
        way = "say which board it is with --board" if options else "unplug it"
        raise FlashError(f"The board at {port} is an {chip}, not the {board_chip[1]} of {board_chip[0]}: {way}.")
    if image_chip != chip:
        raise FlashError(
            f"{name} is made for the {image_chip}, but the board at {port} is an {chip}: "
            "use the firmware made for your board."
        )


def _stopped(chip: str, port: str) -> str:
    return (f"The {chip} at {port} stopped answering while it was being flashed: check its cable, "
            "press its reset button, and try again.")  # fmt: skip


# ------------------------------------------------------------------------------------------- Pico


@dataclass(frozen=True)
class Drive:
    path: Path
    chip: str  # RP2040 or RP2350


def drive_at(path: Path) -> Drive | None:
    """The BOOTSEL drive mounted at `path`, if that is one."""
    try:
        chip = uf2.chip_of_info((path / INFO_FILE).read_text(errors="replace"))
    except OSError:
        return None
    return Drive(path, chip) if chip else None


def search_patterns() -> list[str]:
    """Where to look for BOOTSEL drives: SENSING_DRIVE_SEARCH (globs, os.pathsep between), or the usual places."""
    setting = os.environ.get("SENSING_DRIVE_SEARCH")
    return setting.split(os.pathsep) if setting else list(DRIVE_SEARCH)


def bootsel_drives() -> list[Drive]:
    found = (drive_at(Path(path)) for pattern in search_patterns() for path in sorted(glob.glob(pattern)))
    return [drive for drive in found if drive is not None]


def _one_drive(drive: Path | None) -> Drive | None:
    if drive is not None:
        return drive_at(drive)
    drives = bootsel_drives()
    if len(drives) > 1:
        listed = ", ".join(str(d.path) for d in drives)
        raise FlashError(f"Several boards are in BOOTSEL mode ({listed}): say which with --drive.")
    return drives[0] if drives else None


def into_bootsel(port: str) -> None:
    """Ask the MicroPython board at `port` to restart into BOOTSEL; its serial port goes away."""
    try:
        with connected(port) as board:
            # The pause lets the raw REPL's answer leave before the USB connection drops.
            board.transport.exec_raw_no_follow("import time, machine\ntime.sleep_ms(100)\nmachine.bootloader()")
    except BoardError as e:
        raise FlashError(str(e)) from None


def _new_drive(before: set[Path], port: str, options: bool) -> Drive | None:
    """The one drive that was not there `before`: the board just sent to BOOTSEL, not another waiting there."""
    drives = [d for d in bootsel_drives() if d.path not in before]
    if len(drives) > 1:
        listed = ", ".join(str(d.path) for d in drives)
        if options:
            raise FlashError(f"Several boards are in BOOTSEL mode ({listed}): say which with --drive.")
        raise FlashError(f"Several boards came into BOOTSEL mode at once ({listed}), so which is the one from "
                         f"{port} cannot be told: unplug them all, plug them in again one at a time, and run this "
                         "again.")  # fmt: skip
    return drives[0] if drives else None


def find_drive(drive: Path | None, port: str | None, progress: Progress, options: bool = True) -> Drive:
    """The drive given, else the one drive there, else (with `port`) the drive of the board at `port`, sent to
    BOOTSEL: then a drive already there is another board's, and not taken. `options`: whether a failure's
    sentence may name `sensing device flash`'s --drive; `sensing workshop run` has no such option."""
    found = _one_drive(drive) if drive is not None or port is None else None
    if found is not None:
        return found
    if drive is not None and port is None and drive.exists():
        raise FlashError(f"{drive} is not the drive of a Pico in BOOTSEL mode (it has no {INFO_FILE} naming one).")
    if port is None:
        raise FlashError(
            "No Pico in BOOTSEL mode was found: hold its BOOTSEL button while plugging it in, "
            "or give --port if it runs MicroPython already."
        )
    before = {d.path for d in bootsel_drives()}
    progress(f"Restarting the board at {port} into BOOTSEL", None, 0)
    into_bootsel(port)
    deadline = time.monotonic() + DRIVE_WAIT
    while time.monotonic() < deadline:
        found = _one_drive(drive) if drive is not None else _new_drive(before, port, options)
        if found is not None:
            return found
        time.sleep(0.1)
    if not options:  # the board waits in BOOTSEL; plugged in again, it starts the MicroPython it had
        raise FlashError(
            f"The board at {port} was sent to BOOTSEL, but no drive appeared: have your computer mount USB drives "
            "as they are plugged in (or set SENSING_DRIVE_SEARCH to where it mounts them), then unplug the board, "
            "plug it in again, and run this again."
        )
    raise FlashError(
        f"The board at {port} was sent to BOOTSEL, but no drive appeared: if your computer does not mount "
        "USB drives by itself, mount it and give --drive."
    )


def read_uf2(data: bytes, name: str) -> uf2.UF2Image:
    try:
        return uf2.read_uf2(data, name)
    except uf2.UF2Error as e:
        raise FlashError(str(e)) from None


def check_board(image: uf2.UF2Image, name: str, drive: Drive, board_chip: tuple[str, str] | None,
                options: bool = True) -> None:  # fmt: skip
    """The drive's chip is the board's, and the file's blocks are ones its bootrom writes. `options`: whether a
    failure's sentence may name `sensing device flash`'s --board."""
    if board_chip is not None and board_chip[1] != drive.chip:
        way = "say which board it is with --board" if options else "unplug it"
        raise FlashError(
            f"The board at {drive.path} is an {drive.chip} ({uf2.BOARDS_OF_CHIP[drive.chip]}), "
            f"not the {board_chip[1]} of {board_chip[0]}: {way}."
        )
    try:
        uf2.check_family(image, drive.chip, name)
    except uf2.UF2Error as e:
        raise FlashError(str(e)) from None


def copy_uf2(data: bytes, name: str, drive: Drive, progress: Progress) -> None:
    """Copy onto the drive. The board restarts once the last block is in, and its drive may vanish while the
    copy is closed: an error after every byte was written is the board doing what it should."""
    target = drive.path / name
    written = 0
    try:
        with open(target, "wb") as f:
            for at in range(0, len(data), COPY_CHUNK):
                written += f.write(data[at : at + COPY_CHUNK])
                progress(f"Copying to {drive.path}", len(data), written)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if written < len(data):
            raise FlashError(f"Copying to {drive.path} failed ({os.strerror(e.errno or 5)}): "
                             "unplug the board, start again in BOOTSEL mode, and try again.") from None  # fmt: skip
