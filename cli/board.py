"""A MicroPython board at a serial port, reached through mpremote: connect, look at its files, write files.

Every failure is a BoardError carrying one sentence a resident can act on; commands turn it into `abort`.

    with connected("/dev/ttyACM0") as board:
        found = board.survey(["/main.py"], modules=["umqtt.simple"])
        board.write_file("/main.py", data)
"""

import ast
import contextlib
import errno
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

ANSWER_TIMEOUT = 5  # seconds for a board to answer Ctrl-C and Ctrl-A; an ESP32 reset by opening its port takes ~1
READ_TIMEOUT = 2  # seconds for any single answer, so a silent port cannot hang us
# Seconds a port found busy (or that opens when asked why it did not) is tried again before the CLI gives up:
# a board just plugged in or restarted is opened for a moment by others (on Linux, ModemManager probes every
# new serial port; a program that forks as it closes its end of a port holds the port's lock until its child
# starts).
BUSY_WAIT = 2.0
CHUNK = 512  # bytes of a file per raw-REPL command

# Runs on the board in one raw-REPL command: which of the files are there (and their sha256, or their size
# where the build has no hashlib), which folders exist, which modules the build lacks, and the .mpy files it
# loads (sys.implementation._mpy; None where the build loads none).
SURVEY = """\
def _survey(paths, dirs, modules):
    import os
    import sys
    try:
        import binascii
        import hashlib
    except ImportError:
        hashlib = None

    def stat(path):
        try:
            return os.stat(path)
        except OSError:
            return None

    def digest(path, size):
        if hashlib is None:
            return size
        h = hashlib.sha256()
        buf = bytearray(256)
        view = memoryview(buf)
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
        return binascii.hexlify(h.digest()).decode()

    files = {}
    for path in paths:
        st = stat(path)
        if st is not None and not st[0] & 0x4000:
            files[path] = digest(path, st[6])
    found = [d for d in dirs if (stat(d) or (0,))[0] & 0x4000]
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    mpy = getattr(sys.implementation, "_mpy", None)
    print(repr({"files": files, "dirs": found, "missing": missing, "sha256": hashlib is not None, "mpy": mpy}))


_survey(%r, %r, %r)
del _survey
"""


class BoardError(Exception):
    """Something about the board went wrong; the message is one sentence for the person at the keyboard."""


@dataclass
class Survey:
    files: dict[str, str | int]  # path -> sha256 hex, or size where the board has no hashlib
    dirs: set[str]
    missing: set[str] = field(default_factory=set)  # modules the board's build lacks
    sha256: bool = True
    mpy: int | None = None  # sys.implementation._mpy: the .mpy version in the low byte; None: it loads no .mpy


def parent_dirs(paths: list[str]) -> list[str]:
    """The folders that must exist for these board paths, parents first: ["/sensors", "/lib", "/lib/umqtt"]."""
    found: dict[str, None] = {}
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found["/" + "/".join(parts[:depth])] = None
    return sorted(found, key=lambda d: (d.count("/"), d))


class Board:
    """A board in its raw REPL. Make one with `connected(port)`."""

    def __init__(self, port: str, transport: SerialTransport):
        self.port = port
        self.transport = transport

    def survey(self, paths: list[str], modules: list[str] = ()) -> Survey:
        code = SURVEY % (list(paths), parent_dirs(list(paths)), list(modules))
        found = ast.literal_eval(self.transport.exec(code).decode().strip())
        return Survey(dict(found["files"]), set(found["dirs"]), set(found["missing"]), found["sha256"], found["mpy"])

    def read_file(self, path: str) -> bytes:
        return bytes(self.transport.fs_readfile(path, chunk_size=CHUNK))

    def remove_files(self, paths: list[str]) -> None:
        """Remove these files, all in one command."""
        if paths:
            self.transport.exec(f"import os\nfor p in {list(paths)!r}:\n    os.remove(p)")

    def make_dir(self, path: str) -> None:
        self.transport.fs_mkdir(path)

    def write_file(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write beside the file, then rename over it: a cable pulled half-way leaves the old file whole."""
        beside = path + ".new"
        try:
            self.transport.fs_writefile(
                beside, data, chunk_size=CHUNK,
                progress_callback=(lambda done, _total: progress(done)) if progress else None,
            )  # fmt: skip
            self.transport.exec(f"import os\nos.rename({beside!r}, {path!r})")
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise BoardError(f"The board at {self.port} is full: {path} did not fit.") from None
            raise BoardError(f"The board at {self.port} could not write {path} ({os.strerror(e.errno)}).") from None


class _ThreadQuieted:
    """sys.stdout while boards are being connected to: what a thread in `quiet_in_this_thread` prints is dropped,
    what the other threads print goes on to the real stdout."""

    def __init__(self, real):
        self.real = real

    def write(self, text: str) -> int:
        return len(text) if getattr(_quiet, "on", False) else self.real.write(text)

    def flush(self) -> None:
        if not getattr(_quiet, "on", False):
            self.real.flush()

    def __getattr__(self, name: str):
        return getattr(self.real, name)


_quiet = threading.local()
_quieting = threading.Lock()
_quiet_threads = 0


@contextlib.contextmanager
def quiet_in_this_thread() -> Iterator[None]:
    """Drop what this thread prints. contextlib.redirect_stdout swaps sys.stdout for every thread: with several
    boards at once (sensing workshop run), the others' output would be lost, and crossed restores would leave
    sys.stdout swapped for good."""
    global _quiet_threads
    with _quieting:
        if _quiet_threads == 0:
            sys.stdout = _ThreadQuieted(sys.stdout)
        _quiet_threads += 1
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False
        with _quieting:
            _quiet_threads -= 1
            if _quiet_threads == 0 and isinstance(sys.stdout, _ThreadQuieted):
                sys.stdout = sys.stdout.real


@contextlib.contextmanager
def connected(port: str) -> Iterator[Board]:
    """The board at `port`, interrupted and in its raw REPL, soft-reset so nothing of its last program is left."""
    transport = _open(port)
    try:
        with quiet_in_this_thread():  # mpremote prints what it got when it gives up
            transport.enter_raw_repl(soft_reset=True, timeout_overall=ANSWER_TIMEOUT)
    except (TransportError, OSError):
        _close(transport)
        raise BoardError(
            f"The device at {port} does not answer like a MicroPython board: "
            "put MicroPython on it, or press its reset button, and try again."
        ) from None
    try:
        yield Board(port, transport)
    except TransportExecError as e:
        last_line = e.error_output.strip().splitlines()[-1] if e.error_output.strip() else "an error"
        raise BoardError(f"The board at {port} refused a command: {last_line}.") from None
    except (TransportError, OSError):
        raise BoardError(f"The board at {port} stopped answering: check its cable and try again.") from None
    finally:
        _close(transport)


def _open(port: str) -> SerialTransport:
    if not os.path.exists(port):
        raise BoardError(f"There is no board at {port}: check that it is plugged in and that the port is right.")
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        try:
            return SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT)
        except TransportError:
            passing, why = _why_not_open(port)
            if not passing or time.monotonic() >= deadline:
                raise BoardError(why) from None
            time.sleep(0.1)


def why_not_open(port: str) -> str:
    """mpremote only says it failed; pyserial says why."""
    return _why_not_open(port)[1]


def _why_not_open(port: str) -> tuple[bool, str]:
    """(whether it may pass: another program has the port, or it opened by now; the sentence)."""
    try:
        serial.Serial(port, 115200, exclusive=True).close()
    except serial.SerialException as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
            return True, (f"The port {port} is busy: close the other program using it "
                          "(a serial monitor, Thonny, another sensing command) and try again.")
        if e.errno in (errno.EACCES, errno.EPERM):
            return False, (f"You may not use the port {port}: on Linux, add yourself to the dialout group "
                           "(sudo usermod -aG dialout $USER), then log out and in again.")
        if e.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
            return False, f"There is no board at {port}: check that it is plugged in and that the port is right."
        return False, cannot_open(port)
    return True, cannot_open(port)  # it opens now: what held it has let go


def cannot_open(port: str) -> str:
    return f"The port {port} cannot be opened: unplug the board, plug it in again, and try again."


def _close(transport: SerialTransport) -> None:
    """Leave the board in its friendly REPL, as a person at a terminal would find it, and let the port go."""
    with contextlib.suppress(OSError):
        if transport.in_raw_repl:
            transport.exit_raw_repl()
    with contextlib.suppress(OSError):
        transport.close()
