"""A simulated MicroPython board at the serial edge, for tests that talk to a board the way mpremote does.

    board = SimulatedBoard(root=tmp_path / "flash", micropython=micropython_path()).start()
    board.port      # /dev/pts/N: open it with mpremote (library or command) or pyserial, like /dev/ttyACM0
    board.root      # the board's filesystem: /main.py on the board is board.root / "main.py"
    board.stop()

A Pico's round trip through BOOTSEL, for flashing (see "BOOTSEL" below):

    board = SimulatedBoard(root, micropython, version="1.24.1", media=tmp_path / "media", links=by_id).start()
    # machine.bootloader(): the port goes, media/RPI-RP2 appears; a whole UF2 copied there: the drive goes,
    board.wait_at_port()    # and the board is back at a new port, running the version in the UF2

Two pseudo-terminals and a relay thread between them:

    mpremote --/dev/pts/N (raw)--> relay thread --pty--> the MicroPython unix port (`micropython -i boot`)

The unix port speaks the REPL protocol itself when its stdin is a terminal: the friendly REPL, Ctrl-A into the
raw REPL ("raw REPL; CTRL-B to exit\\r\\n>"), code then Ctrl-D answered by "OK", output, \\x04, error output,
\\x04, ">", raw-paste mode (Ctrl-E A Ctrl-A), Ctrl-B back to the friendly REPL. What it does differently from
a board, the simulator makes up for:

- Ctrl-D on an empty line (friendly or raw) makes the unix port exit, where a board soft-reboots. The relay
  sees it exit, prints "MPY: soft reboot" and starts it again in the REPL it was in: in the friendly REPL it
  runs /boot.py and /main.py, then the banner; in the raw REPL it runs /boot.py and prints the raw REPL prompt
  again (the relay enters it with Ctrl-A for the new process and keeps the banner back), as a board does.
  `sys.exit()` and `machine.soft_reset()` are soft reboots too.
- `machine.reset()` is a hard reset: no "MPY: soft reboot", the banner, /main.py run, the friendly REPL.
- Ctrl-C: a board interrupts running code when Ctrl-C arrives. The unix port does so on SIGINT, so its
  terminal keeps ISIG on while code runs (the REPL turns it off while it reads a line) and the kernel turns
  Ctrl-C into SIGINT. Bytes for the board are held back while a new process starts, until its boot script has
  set the board up (before that, SIGINT would kill it rather than interrupt it, or leave it half set up).
- The filesystem: the boot script (board_boot.py) mounts board.root at "/" (os.VfsPosix), so "/main.py" is
  board.root/main.py; sys.path is ["", ".frozen", "/lib"] as on a board. os, open, hashlib and binascii are
  the unix port's own, which is all mpremote's fs commands need: nothing extra is put in the board's
  filesystem. Two are wrapped: `os.ilistdir`, to give each file's size as a board's filesystems do
  (VfsPosix gives none), and `os.rename`, which the unix port gets wrong for absolute paths under a VfsPosix
  mounted at "/".
- The board type: `sys.platform` ("rp2", "esp32") and `os.uname().machine` ("Raspberry Pi Pico W with
  RP2040") are those of the simulated board, through stand-ins put in sys.modules for `sys`, `os` and
  `machine` (which also gets reset and soft_reset). The banner stays the unix port's own.

BOOTSEL (the Pico boards): `machine.bootloader()` ends MicroPython and closes the serial port, so its
/dev/pts/N disappears as a USB serial port does, and `port` is None. Its drive appears in `media` (a folder
with INFO_UF2.TXT naming the chip, as a desktop mounts it in /media/$USER). The relay thread then plays the
bootrom (tests/boards/uf2.py `written`): once a file on the drive holds every block of a family the chip
writes, the drive goes, and the board is back at a new serial port running MicroPython, with its files kept
(MicroPython's UF2 leaves the filesystem alone). The installed MicroPython's version is state of the simulated
board: `version` (the one given, else the unix port's own) is what `sys.implementation.version` says on the
board, and a UF2 with MicroPython's banner in it ("MicroPython v1.25.0 on ...") installs that version.
A file of another chip's family does nothing, as on a Pico: the drive stays. With `links`, the board keeps
a link named after its USB serial number to its port in that folder while it is at one, as Linux keeps
/dev/serial/by-id. `machine.unique_id()` is the board's own, the same across round trips. A board comes back
at the lowest free /dev/pts number, often the one it left, as Linux gives the lowest free ttyACM number; with
`renumbered`, another device takes that number while the board is in BOOTSEL, and it comes back at another.
With `lost_after_flash`, the board writes the UF2 and its drive goes, but no serial port comes back (a USB hub
or cable that drops the device as it restarts): `replug()` unplugs it and plugs it in again, which also takes
a board out of BOOTSEL with nothing copied (it starts the MicroPython it had).

Not simulated: the line-ending conversion of a board's console (the unix port prints "\\n" where a board
prints "\\r\\n"), baud rates and DTR/RTS, the size of a board's flash and RAM.
"""

import json
import os
import re
import secrets
import select
import shutil
import signal
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

from tests.boards.uf2 import DRIVE_NAMES, bootsel_drive, micropython_version, written

BOARDS = {
    # board name: (sys.platform, os.uname().machine, the chip with a BOOTSEL drive or None)
    "RPI_PICO_W": ("rp2", "Raspberry Pi Pico W with RP2040", "RP2040"),
    "RPI_PICO2_W": ("rp2", "Raspberry Pi Pico 2 W with RP2350", "RP2350"),
    "ESP32_GENERIC": ("esp32", "Generic ESP32 module with ESP32", None),
    "ESP32_GENERIC_S3": ("esp32", "Generic ESP32S3 module with ESP32S3", None),
    "ESP32_GENERIC_C3": ("esp32", "ESP32C3 module with ESP32C3", None),
}
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER_END = b'Type "help()" for more information.\r\n'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
RESET_STATUS = 86  # the exit status of machine.reset() in the boot script's stand-in: a hard reset
BOOTLOADER_STATUS = 87  # and of machine.bootloader(): into BOOTSEL
BOOTROM_LOOKS = 0.05  # seconds between the bootrom's looks at its drive
HOLD_AFTER_INTERRUPT = 0.5  # seconds; see SimulatedBoard._deliverable
HOST_BUFFER = 64 * 1024  # what the board keeps for a serial port nobody reads; older output is dropped

BOOT = Path(__file__).with_name("board_boot.py")  # MicroPython: sets the board up at each start


def _board_console_attributes(fd: int) -> list:
    """The board side's terminal while code runs: bytes pass untouched, except Ctrl-C, which becomes SIGINT."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR | termios.ISTRIP | termios.IXON)
    attrs[1] &= ~termios.OPOST
    attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)
    attrs[3] |= termios.ISIG | termios.NOFLSH  # NOFLSH: bytes after a Ctrl-C are kept, as in a board's buffer
    attrs[6][termios.VINTR] = b"\x03"
    attrs[6][termios.VQUIT] = b"\x00"  # no SIGQUIT on Ctrl-\ nor SIGTSTP on Ctrl-Z: only Ctrl-C is special
    attrs[6][termios.VSUSP] = b"\x00"
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    return attrs


class SimulatedBoard:
    """A MicroPython board on a pseudo-terminal, its flash a directory. See the module's docstring."""

    def __init__(self, root: Path, micropython: str, board: str = "RPI_PICO_W", version: str | None = None,
                 media: Path | None = None, links: Path | None = None, renumbered: bool = False,
                 lost_after_flash: bool = False):  # fmt: skip
        if board not in BOARDS:
            raise ValueError(f"unknown board {board!r}: one of {', '.join(BOARDS)}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.micropython = micropython
        self.board = board
        self.platform, self.machine, self.chip = BOARDS[board]
        self.version = version  # the MicroPython it runs, as the board says; None: the unix port's own
        self.unique_id = secrets.token_hex(8)  # machine.unique_id(), and its USB serial number
        self.port: str | None = None  # None while it has no serial port (in BOOTSEL)
        self.drive: Path | None = None  # its BOOTSEL drive, while it is in BOOTSEL
        self.boots = 0  # how many times MicroPython started: 1 + soft reboots + resets
        self._private = Path(tempfile.mkdtemp(prefix="sensing-board-"))
        self.media = Path(media) if media is not None else self._private / "media"
        self.links = Path(links) if links is not None else None
        self.renumbered = renumbered
        self.lost_after_flash = lost_after_flash
        self._lost = False  # flashed, and its serial port not back (lost_after_flash) until replug()
        self._replug = threading.Event()
        self._other_device: tuple[int, int] | None = None  # the pty that took its number, with `renumbered`
        self._left: str | None = None  # the port it left for BOOTSEL
        self._serial_master = self._serial_slave = None
        self._console: int | None = None  # our end of the unix port's terminal
        self._pid: int | None = None
        self._ready = False
        self._raw_mode = False  # which REPL the running MicroPython is in, told by what it printed last
        self._holding_back_banner = False
        self._recent = b""
        self._to_board = bytearray()
        self._interrupted_at: float | None = None
        self._to_host = bytearray()
        self._wake_read, self._wake_write = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._at_prompt = threading.Event()
        self._listening = False  # what the first boot prints before start() returns goes nowhere

    # ------------------------------------------------------------------------------------------- public

    def start(self) -> "SimulatedBoard":
        self._plug_in()
        self._thread = threading.Thread(target=self._relay, name=f"board {self.port}", daemon=True)
        self._thread.start()
        self._wait_for_first_boot()
        return self

    def _wait_for_first_boot(self, timeout: float = 10.0) -> None:
        """Return once the board has booted, as one plugged in a while ago; what it printed went nowhere."""
        deadline = time.monotonic() + timeout
        while not self._booted():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulated board did not start within {timeout:.0f} s")
            time.sleep(0.005)
        self._listening = True

    def _booted(self) -> bool:
        """At its prompt, or set up and running /main.py: where a board plugged in a while ago would be."""
        return self._at_prompt.is_set() or (self._boot_done() and (self.root / "main.py").exists())

    def wait_at_port(self, timeout: float = 10.0) -> str:
        """The port, once the board is at one (back from BOOTSEL) and has booted."""
        deadline = time.monotonic() + timeout
        while self.port is None or not self._listening:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulated board was not back at a serial port within {timeout:.0f} s")
            time.sleep(0.01)
        return self.port

    def replug(self, timeout: float = 10.0) -> str:
        """Unplug the board and plug it in again, while it is in BOOTSEL or lost after a flash: it starts the
        MicroPython its flash holds, at a serial port (returned)."""
        if self.drive is None and not self._lost:
            raise RuntimeError("replug() is for a board in BOOTSEL or lost after a flash")
        self._replug.set()
        return self.wait_at_port(timeout)

    @property
    def link(self) -> Path | None:
        """Its link in `links`, named as Linux names a Pico's in /dev/serial/by-id."""
        if self.links is None:
            return None
        return self.links / f"usb-MicroPython_Board_in_FS_mode_{self.unique_id}-if00"

    def stop(self) -> None:
        """Unplug the board: MicroPython stops and the port disappears."""
        if self._thread is None:
            return
        self._stopping = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        self._thread = None
        self._kill()
        self._unplug_serial()
        if self.drive is not None:
            shutil.rmtree(self.drive, ignore_errors=True)
            self.drive = None
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._private, ignore_errors=True)

    def __enter__(self) -> "SimulatedBoard":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SimulatedBoard {self.board} at {self.port or self.drive}, flash {self.root}>"

    # ------------------------------------------------------------------------------------------- USB

    def _plug_in(self) -> None:
        """The board's USB serial port appears (a new pseudo-terminal), and MicroPython starts from /main.py."""
        self._serial_master, self._serial_slave = os.openpty()
        tty.setraw(self._serial_slave)  # a serial line passes bytes as they are; pyserial sets it raw too
        # We keep the port's own end open, as the USB device keeps existing when no program has it open:
        # reading our end then blocks instead of failing.
        os.set_blocking(self._serial_master, False)
        self._to_host.clear()
        self._to_board.clear()
        self._spawn(run_main=True, raw=False)
        self.port = os.ttyname(self._serial_slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.symlink_to(self.port)

    def _unplug_serial(self) -> None:
        """The USB serial port goes: its /dev/pts/N disappears, and a program that has it open gets EIO."""
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        self.port = None
        for fd in (self._serial_master, self._serial_slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._serial_master = self._serial_slave = None

    def _into_bootsel(self) -> None:
        """machine.bootloader(): the serial port goes and the BOOTSEL drive appears, as its bootrom shows it."""
        self._left = self.port
        self._unplug_serial()
        if self.renumbered:
            self._other_device = os.openpty()
        name, n = DRIVE_NAMES[self.chip], 1
        while (self.media / name).exists():  # another board's drive: desktops add a number
            name, n = f"{DRIVE_NAMES[self.chip]}{n}", n + 1
        self.media.mkdir(parents=True, exist_ok=True)
        self.drive = bootsel_drive(self.media / name, self.chip)

    def _bootrom(self) -> None:
        """Look at what was copied onto the drive: once a file holds a whole image for this chip, restart."""
        for path in self.drive.iterdir():
            if path.name in ("INFO_UF2.TXT", "INDEX.HTM"):
                continue
            try:
                image = written(path.read_bytes(), self.chip)
            except OSError:
                continue
            if image is not None:
                self.version = micropython_version(image) or self.version
                shutil.rmtree(self.drive, ignore_errors=True)  # the drive goes while the copy may still be open
                self.drive = None
                if self.lost_after_flash:
                    self._lost = True
                else:
                    self._back_at_port()
                return

    def _back_at_port(self) -> None:
        """Out of BOOTSEL (or plugged in again): at a new serial port, running the MicroPython it holds."""
        self._lost = False
        self._listening = False  # what it prints before a program opens its new port goes nowhere
        self._at_prompt.clear()
        if self.renumbered:
            self._take_number()
        self._plug_in()
        for fd in self._other_device or ():
            os.close(fd)
        self._other_device = None

    def _take_number(self) -> None:
        """With `renumbered`: the other device holds the number the board left, if it is free by now. A program
        that had the port open when the board left keeps the number until it closes its end, which may be after
        the other device came (and took the next number)."""
        if self._other_device is not None and os.ttyname(self._other_device[1]) == self._left:
            return
        taken = os.openpty()  # the lowest free number
        if os.ttyname(taken[1]) == self._left:
            for fd in self._other_device or ():
                os.close(fd)
            self._other_device = taken
        else:
            for fd in taken:
                os.close(fd)

    # ------------------------------------------------------------------------------------------- MicroPython

    def _spawn(self, run_main: bool, raw: bool) -> None:
        ready = self._private / "ready"
        ready.unlink(missing_ok=True)
        settings = self._private / "settings.json"
        version = [int(n) for n in re.findall(r"\d+", self.version)[:3]] if self.version else None
        settings.write_text(json.dumps({
            "ready": str(ready), "root": str(self.root.resolve()), "platform": self.platform,
            "machine": self.machine, "reset_status": RESET_STATUS, "run_main": run_main, "version": version,
            "unique_id": self.unique_id, "bootloader_status": BOOTLOADER_STATUS if self.chip else None,
        }))  # fmt: skip
        env = dict(os.environ, SENSING_BOARD_SETTINGS=str(settings))
        pid, console = os.forkpty()  # the child's terminal becomes its controlling one, so Ctrl-C is SIGINT
        if pid == 0:  # the child: only set up its terminal and exec
            try:
                # Nothing of the host's open files goes with it: a serial port another thread has open (and
                # locked, as pyserial does) would stay locked for as long as this MicroPython runs.
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                termios.tcsetattr(0, termios.TCSANOW, _board_console_attributes(0))
                os.chdir(self.root)
                os.execve(self.micropython, [self.micropython, "-i", str(BOOT)], env)
            finally:
                os._exit(127)
        os.set_blocking(console, False)
        self._pid, self._console = pid, console
        self._ready = False
        self._interrupted_at = None
        self._recent = b""
        self._raw_mode = raw
        self._holding_back_banner = raw
        if raw:
            self._to_board[:0] = b"\x01"  # the new process starts in the friendly REPL: take it to the raw one
        self.boots += 1

    def _boot_done(self) -> bool:
        try:
            return (self._private / "ready").read_bytes() == b"ready"
        except FileNotFoundError:
            return False

    def _kill(self) -> None:
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._pid = None
        if self._console is not None:
            os.close(self._console)
            self._console = None

    def _exited(self) -> None:
        """MicroPython ended: a soft reboot (Ctrl-D, sys.exit), or a hard reset (machine.reset, a crash)."""
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        os.close(self._console)
        self._console = None
        if self._stopping:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == BOOTLOADER_STATUS:
            self._into_bootsel()
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) != RESET_STATUS:
            self._send_to_host(SOFT_REBOOT)
            self._spawn(run_main=not self._raw_mode, raw=self._raw_mode)
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT:
            # The unix port has no SIGINT handler for the moment between running code and reading the next
            # line; a Ctrl-C landing there ends it. A board would not notice: start again where it was.
            self._spawn(run_main=False, raw=self._raw_mode)
        else:
            self._to_board.clear()
            self._spawn(run_main=True, raw=False)

    # ------------------------------------------------------------------------------------------- relay

    def _send_to_host(self, data: bytes) -> None:
        self._to_host += data
        del self._to_host[:-HOST_BUFFER]

    def _from_board(self, data: bytes) -> None:
        seen = self._recent + data
        raw_at, friendly_at = seen.rfind(RAW_PROMPT), seen.rfind(FRIENDLY_BANNER_END)
        if raw_at != friendly_at:
            self._raw_mode = raw_at > friendly_at
        self._recent = seen[-64:]
        if FRIENDLY_BANNER_END + b">>> " in seen:
            self._at_prompt.set()
        if not self._listening:
            # Back from BOOTSEL (start() waits for the first boot itself): listening once booted.
            self._listening = self._booted()
            return
        if self._holding_back_banner:
            if raw_at < 0:
                return
            self._holding_back_banner = False
            data = seen[raw_at:]
        self._send_to_host(data)

    def _executing(self) -> bool:
        """Whether MicroPython runs code (its terminal has ISIG on) rather than reading a line at its REPL."""
        try:
            return bool(termios.tcgetattr(self._console)[3] & termios.ISIG)
        except termios.error:
            return False

    def _deliverable(self) -> int:
        """How many of the bytes waiting for the board to pass on now.

        Nothing until a new process has set itself up. While code runs, bytes pass up to a Ctrl-C; the bytes
        after it wait (at most HOLD_AFTER_INTERRUPT) until the REPL reads again: should the Ctrl-C land in the
        moment the unix port has no SIGINT handler and end it, they go to the process that replaces it.
        """
        if not self._ready:
            self._ready = self._boot_done()
            if not self._ready:
                return 0
        if self._interrupted_at is not None:
            if self._executing() and time.monotonic() - self._interrupted_at < HOLD_AFTER_INTERRUPT:
                return 0
            self._interrupted_at = None
        ctrl_c = self._to_board.find(b"\x03")
        if ctrl_c < 0 or not self._executing():
            return len(self._to_board)
        self._interrupted_at = time.monotonic()
        return ctrl_c + 1

    def _relay(self) -> None:
        while not self._stopping:
            if self.drive is not None or self._lost:  # no serial port, no MicroPython: in BOOTSEL, or lost
                if select.select([self._wake_read], [], [], BOOTROM_LOOKS)[0]:
                    return
                if self._replug.is_set():
                    self._replug.clear()
                    if self.drive is not None:
                        shutil.rmtree(self.drive, ignore_errors=True)
                        self.drive = None
                    self._back_at_port()
                elif self.drive is not None:  # the bootrom looks at its drive
                    self._bootrom()
                continue
            readers = [self._serial_master, self._wake_read] + ([self._console] if self._console else [])
            writers = [self._serial_master] if self._to_host else []
            deliver = self._deliverable() if self._to_board and self._console is not None else 0
            if deliver:
                writers.append(self._console)
            waiting = self._to_board and not deliver
            readable, writable, _ = select.select(readers, writers, [], 0.005 if waiting else 0.5)
            if self._wake_read in readable:
                return
            if self._serial_master in readable:
                try:
                    received = os.read(self._serial_master, 4096)
                except OSError:
                    received = b""
                self._to_board += received
                # A program has the port open and talks to the board: it hears what the board says from now on,
                # the banner too when the board has not started yet (it answers once it has).
                self._listening = self._listening or bool(received)
            if self._console is not None and self._console in readable:
                try:
                    data = os.read(self._console, 4096)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: the process has ended and its terminal closed
                    data = b""
                if data == b"":
                    self._exited()
                    continue
                if data:
                    self._from_board(data)
            if self._serial_master in writable:
                try:
                    del self._to_host[: os.write(self._serial_master, self._to_host)]
                except OSError:
                    pass
            if self._console is not None and self._console in writable:
                try:
                    del self._to_board[: os.write(self._console, self._to_board[:deliver])]
                except OSError:
                    pass
