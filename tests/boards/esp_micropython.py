"""An ESP32 DevKit plugged into this computer, as `sensing workshop run` meets one: at a local serial port, in its
ROM loader when esptool resets it into download mode, running MicroPython when it boots a MicroPython image.

    with EspMicroPythonBoard(tmp_path / "fs", micropython, firmware=micropython_bin("esp32", "1.24.1")) as board, \\
            modem_lines(board):
        board.port           # /dev/pts/N: the board's USB-serial adapter, as /dev/ttyUSB0
        board.installed      # "1.24.1": the MicroPython version of the image in its flash (None: none there)
        board.boots          # how the chip came up at each reset: "firmware", "download", ...
        board.root           # MicroPython's filesystem, as the board's files

The board is EspBoard (tests/boards/esp_board.py), the chip of tests/boards/esp_rom.py behind a DevKit's
auto-program circuit (DTR and RTS drive EN and IO0), here at a pseudo-terminal instead of behind an RFC 2217
server. Plugged in (`start`), it boots its firmware, or starts its ROM loader if its BOOT button is held
(`boot_button=True`). At each reset with IO0 high it boots what its flash holds at the chip's offset (0x1000
on the ESP32 and ESP32-S2, 0 on the others): an application image whose header
names this chip and whose checksum holds (the ROM and the bootloader check them). An image carrying MicroPython's banner
("MicroPython v1.25.0 on ...", as micropython_bin builds one) runs as the simulated MicroPython board of
tests/boards/simulator.py (the unix port behind the raw REPL, soft reboots as a board), that version, behind
this same port at 115200 baud, its filesystem `root`. Anything else leaves the chip silent after its ROM's boot
line, as a chip that runs no REPL is to a host: a blank chip (0xFF) adds "invalid header: 0xffffffff". Bytes the
host sends while the chip boots MicroPython are lost (nothing reads the UART yet): a host must wait for
MicroPython or try again. MicroPython's filesystem is part of the flash (the "vfs" partition at 0x200000 of
MicroPython's 4 MB partition table): an erase reaching it, as the chip erase before writing does, empties
`root`, and MicroPython starts with an empty filesystem, as it makes a new one at its next boot. A real
MicroPython .bin for the ESP32 and S2 is a bootloader, a partition table and the application together; here
the image is one application image, which is what the ROM's checks and the CLI's chip check read.

DTR and RTS: a pty has no modem lines, and the kernel refuses their ioctls on it (ENOTTY): TIOCMGET and
TIOCMSET, with which esp_pylib's "unix tight" reset sets both lines at once, and TIOCMBIS and TIOCMBIC,
with which pyserial's setDTR/setRTS (and its open) set one. `modem_lines(board)` answers those four for any
file descriptor open on the board's pty, as a USB-serial adapter's kernel driver answers them for its
ttyUSB node, by setting the board's DTR and RTS; every other request, and every other device, goes to the
real fcntl. It stands in for the `fcntl` module inside esp_pylib.serial_reset and serial.serialposix, the
two callers, in this process only: so the command must run in the test's process (CliRunner), as the
workshop tests run it. Serving the board over RFC 2217 instead (as esp_board.py does) would not do:
`sensing workshop run` takes local ports (cli/board.py checks the port exists before mpremote opens it),
and a board at a workshop is plugged into the computer that runs it. The kernel's own change of both lines
at once when the port is opened and closed is not modelled (it resets nothing on a DevKit); pyserial's open
then asserts DTR, then RTS, which does not reset the chip either. A board without the circuit:
`auto_program=False`.

Not simulated beyond EspBoard's and SimulatedBoard's own limits: MicroPython's first-boot messages, the
second-stage bootloader's log, the USB-Serial/JTAG of the S3/C3/C6.
"""

import contextlib
import functools
import operator
import os
import select
import shutil
import struct
import termios
import threading
import tty
from pathlib import Path

import esp_pylib.serial_reset
import serial.serialposix

from tests.boards.esp_board import EspBoard
from tests.boards.esp_rom import ROM_BAUD, SPEEDS, app_image
from tests.boards.simulator import SimulatedBoard
from tests.boards.uf2 import micropython_version

# Per chip, from Espressif's documents: the chip id in an image's extended header, where the ROM boots from, and
# MicroPython's board name (its sys.implementation and os.uname() in the simulator).
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c6": 13}
BOOT_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000}  # the others boot from 0
BOARD_NAMES = {"esp32": "ESP32_GENERIC", "esp32s3": "ESP32_GENERIC_S3", "esp32c3": "ESP32_GENERIC_C3"}
FILESYSTEM = 0x200000  # MicroPython's vfs partition on 4 MB boards: to the end of the flash
MODEM_REQUESTS = (termios.TIOCMGET, termios.TIOCMSET, termios.TIOCMBIS, termios.TIOCMBIC)


def micropython_bin(chip: str, version: str, size: int = 40_000) -> bytes:
    """A MicroPython image for `chip` (esp32, esp32s3, ...) as the ROM and esptool see one, with the banner of
    `version` inside, as a build's image has it."""
    banner = f"MicroPython v{version} on 2025-04-15; {BOARD_NAMES.get(chip, chip)} with {chip.upper()}".encode()
    return app_image(CHIP_IDS[chip], size, text=banner)


def bootable_image(flash: bytes, chip: str) -> bytes | None:
    """The application image the ROM of `chip` boots from `flash`: its header names the chip (magic 0xE9, the
    chip id at byte 12) and the XOR of its segments' data is the byte ending it; else None."""
    at = start = BOOT_OFFSETS.get(chip, 0)
    if flash[at] != 0xE9 or struct.unpack_from("<H", flash, at + 12)[0] != CHIP_IDS[chip]:
        return None
    segments, at = flash[at + 1], at + 24
    checksum = 0xEF
    for _ in range(segments):
        _, length = struct.unpack_from("<II", flash, at)
        if at + 8 + length >= len(flash):
            return None
        checksum = functools.reduce(operator.xor, flash[at + 8 : at + 8 + length], checksum)
        at += 8 + length
    end = at + 15 - (at - start) % 16  # padded to 16 bytes, the checksum last
    return bytes(flash[start : end + 1]) if flash[end] == checksum else None


class EspMicroPythonBoard(EspBoard):
    """See the module's docstring. `firmware`: an image in its flash at the chip's offset when plugged in.
    `auto_program=False`: a board without the DTR/RTS circuit (a bare module on a USB-serial adapter, some
    boards): the lines change, EN and IO0 do not, and only its buttons would take it to its loader."""

    def __init__(self, root: Path, micropython: str, chip: str = "esp32", firmware: bytes | None = None,
                 auto_program: bool = True, **chip_options):  # fmt: skip
        super().__init__(chip, **chip_options)
        self.auto_program = auto_program
        if chip not in BOARD_NAMES:
            raise ValueError(f"no simulated MicroPython for {chip!r}: one of {', '.join(BOARD_NAMES)}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.micropython = micropython
        self.unique_id = os.urandom(6).hex()  # machine.unique_id(): the chip's MAC address, kept across flashes
        if firmware is not None:
            at = BOOT_OFFSETS.get(chip, 0)
            self.flash[at : at + len(firmware)] = firmware
        self.port: str | None = None
        self._master = self._slave = None
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wanted: str | None = None  # the MicroPython version the chip boots now, None: none
        self._generation = 0  # counts resets: MicroPython started for an earlier one is stopped
        self._running_generation = 0
        self._running: SimulatedBoard | None = None  # MicroPython, while it runs
        self._inner: int | None = None  # our end of the line to it (the simulated board's own port)
        self._up = threading.Event()  # MicroPython runs, for the generation wanted

    @property
    def installed(self) -> str | None:
        image = bootable_image(self.flash, self.chip)
        return micropython_version(image) if image else None

    @property
    def running(self) -> str | None:
        """The MicroPython version running now, None while the chip runs none (in its loader, blank, in reset)."""
        return self._wanted if self.loader is None and self._up.is_set() else None

    # ------------------------------------------------------------------------------------------- plugging in

    def start(self, timeout: float = 10.0) -> "EspMicroPythonBoard":
        """Plug it in: the port appears and the chip boots its firmware (its loader with `boot_button` held);
        returns once MicroPython runs (if any)."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # our end stays open, as the adapter's device node stays while it is plugged in
        os.set_blocking(self._master, False)  # what nobody reads is lost, not waited on, as on a UART
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name=f"ESP32 {self.port}", daemon=True)
        self._thread.start()
        with self._lock:
            self.restart(download=self.boot_button)  # BOOT held while plugged in: its ROM loader
        if self._wanted is not None and not self._up.wait(timeout):
            self.stop()
            raise RuntimeError(f"MicroPython did not start on the simulated ESP32 within {timeout:.0f} s")
        return self

    def stop(self) -> None:
        """Unplug it."""
        if self._thread is None:
            return
        self._stopping = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=20)
        self._thread = None
        self._stop_micropython()
        for fd in (self._master, self._slave, self._wake_read, self._wake_write, self._node):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.port = None

    def __enter__(self) -> "EspMicroPythonBoard":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EspMicroPythonBoard {self.chip} at {self.port}, {self.loader or self.running or 'silent'}>"

    # ------------------------------------------------------------------------------------------- the chip

    def _set_lines(self, dtr: bool, rts: bool) -> None:
        if self.auto_program:
            super()._set_lines(dtr, rts)
        else:
            self._dtr, self._rts = dtr, rts

    def restart(self, download: bool, banner: bool = True) -> None:
        super().restart(download, banner)
        wanted = None
        if not download:
            image = bootable_image(self.flash, self.chip)
            at = BOOT_OFFSETS.get(self.chip, 0)
            if self.flash[at] != 0xE9:  # no image at all, as on a blank chip
                self._send_raw(b"invalid header: 0x%08x\r\n" % struct.unpack_from("<I", self.flash, at))
            wanted = micropython_version(image) if image else None
        self._firmware(wanted)

    def hold_in_reset(self) -> None:
        super().hold_in_reset()
        self._firmware(None)

    def _firmware(self, version: str | None) -> None:
        """The chip was reset: what ran stops, and `version` of MicroPython boots (the serving thread starts it)."""
        self._wanted = version
        self._generation += 1
        self._up.clear()
        os.write(self._wake_write, b"r")

    def _erase(self, start: int, end: int) -> int:
        erased = super()._erase(start, end)
        if erased > FILESYSTEM:  # MicroPython's filesystem was in those sectors
            for path in self.root.iterdir():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return erased

    # ------------------------------------------------------------------------------------------- the line

    def _host_baud(self) -> int | None:
        try:
            return SPEEDS.get(termios.tcgetattr(self._master)[5])
        except termios.error:
            return None

    def _transmit(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):  # the host's buffer is full: nobody reads, the bytes are lost
            os.write(self._master, data)

    def _serve(self) -> None:
        while not self._stopping:
            self._boot()
            readers = [self._master, self._wake_read] + ([self._inner] if self._inner is not None else [])
            readable, _, _ = select.select(readers, [], [])
            if self._wake_read in readable:
                os.read(self._wake_read, 64)
            if self._master in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._from_host(os.read(self._master, 65536))
            if self._inner is not None and self._inner in readable:
                try:
                    data = os.read(self._inner, 65536)
                except OSError:
                    data = b""
                if data and self._host_baud() == ROM_BAUD:  # MicroPython's console is at 115200
                    self._transmit(data)

    def _from_host(self, data: bytes) -> None:
        self.receive(data)  # the ROM loader's or the stub's; nobody's while the chip runs its firmware
        with self._lock:
            forward = self.loader is None and self._up.is_set() and self._host_baud() == ROM_BAUD
        if forward:
            os.write(self._inner, data)

    def _boot(self) -> None:
        """Stop the MicroPython of an earlier boot; start the one the chip boots now, if any."""
        with self._lock:
            generation, wanted = self._generation, self._wanted
        if generation == self._running_generation:
            return
        self._stop_micropython()
        self._running_generation = generation
        if wanted is None:
            return
        board = SimulatedBoard(self.root, self.micropython, board=BOARD_NAMES[self.chip], version=wanted)
        board.unique_id = self.unique_id
        board.start()
        inner = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(inner)
        self._running, self._inner = board, inner
        while select.select([self._master], [], [], 0)[0]:  # what the host sent while the chip booted: lost
            try:
                os.read(self._master, 65536)
            except OSError:
                break
        with self._lock:
            if self._generation == generation:
                self._up.set()

    def _stop_micropython(self) -> None:
        self._up.clear()
        if self._inner is not None:
            os.close(self._inner)
            self._inner = None
        if self._running is not None:
            self._running.stop()
            self._running = None


class _ModemLines:
    """The `fcntl` module as pyserial and esp_pylib see it: the modem-line ioctls on the board's pty are answered
    by the board (see the module's docstring); all else is fcntl's."""

    def __init__(self, real, board: EspMicroPythonBoard):
        self._real = real
        self._board = board
        self._device = os.stat(board.port).st_rdev

    def ioctl(self, fd, request, arg=0, *more):
        if request not in MODEM_REQUESTS or os.fstat(fd).st_rdev != self._device:
            return self._real.ioctl(fd, request, arg, *more)
        board = self._board
        if request == termios.TIOCMGET:
            return struct.pack("I", board.modem_bits)
        bits = struct.unpack("I", arg)[0]
        if request == termios.TIOCMBIS:
            bits |= board.modem_bits
        elif request == termios.TIOCMBIC:
            bits = board.modem_bits & ~bits
        board.modem_bits = bits
        return arg

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def modem_lines(board: EspMicroPythonBoard):
    """DTR and RTS at the board's port work, in this process, while inside (see the module's docstring)."""
    modules = (esp_pylib.serial_reset, serial.serialposix)
    real = [module.fcntl for module in modules]
    for module, was in zip(modules, real, strict=True):
        module.fcntl = _ModemLines(was, board)
    try:
        yield
    finally:
        for module, was in zip(modules, real, strict=True):
            module.fcntl = was
