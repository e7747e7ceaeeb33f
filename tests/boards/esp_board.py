"""An ESP32 development board behind its USB-serial adapter, served over RFC 2217 (serial over telnet), so that
what esptool does with DTR and RTS reaches the chip.

    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board) as server:
        server.url          # rfc2217://127.0.0.1:N: give it to `sensing device flash`, or to esptool with
                            # ?ign_set_control added (esp_rfc2217_server answers no DTR/RTS change)
        board.boots         # how the chip came up at each reset: "download" (ROM loader) or "firmware"
        board.flash         # as EspRomPeer's (tests/boards/esp_rom.py), whose chip this is

The board: the chip of tests/boards/esp_rom.py, and the auto-program circuit of Espressif's DevKits, two
transistors between the adapter's DTR and RTS and the chip's EN (reset) and IO0 (boot strap). With pyserial's
True meaning an asserted line (pulled low):

    DTR    RTS    EN     IO0
    False  True   low    high      the chip is held in reset
    True   False  high   low       IO0 pulled low
    else          high   high

EN has an RC delay (10 kΩ, 1 µF): the chip leaves reset EN_RISE after EN is released, and samples IO0 then:
low, it starts its ROM loader ("download"); high, it runs its firmware, which does not answer SYNC here. The
ROM prints its boot line at 115200 either way, as esptool expects to find after a reset. Holding the BOOT
button (`boot_button = True`) pulls IO0 low whatever DTR and RTS say. The board starts powered up, running
its firmware.

The servers: Rfc2217Server(board) is Espressif's esp_rfc2217_server as it runs on Linux: its port manager
(esp_rfc2217_server.esp_port_manager) does the reset next to the board, in one thread, with esptool's own
"unix tight" sequence, when a client's DTR change asks for it; the client must ignore the answers to its
line changes (`?ign_set_control`), which that manager does not give. That sequence sets DTR and RTS together
with the TIOCMGET/TIOCMSET ioctls, which a USB-serial adapter's kernel driver answers: `modem_control_of`
answers them for the board instead (the only stand-in: the code that calls them is Espressif's).
Rfc2217Server(board, espressif=False) is pyserial's plain port manager, which relays every DTR and RTS change
as it arrives: a client's reset sequence then reaches the board one change per network round trip (pyserial
waits at least 50 ms for each acknowledgement), which an ESP32's reset circuit does not survive (esptool
issue #383): the chip leaves reset with IO0 still high.

What this does not have: real line timing (bytes arrive at once, whatever the rate), the USB-Serial/JTAG
peripheral of the ESP32-S3/C3/C6 (a native USB port resets the chip by its own sequence, not by EN/IO0
transistors), and adapters with hardware flow control (CP2102C), whose sequences differ.
"""

import contextlib
import errno
import os
import select
import socket
import struct
import termios
import threading
import time

import esp_pylib.serial_reset
import serial.rfc2217
from esp_rfc2217_server.esp_port_manager import EspPortManager

from tests.boards.esp_rom import ROM_BAUD, EspChip

EN_RISE = 0.01  # seconds from EN's release until the chip leaves reset: its RC delay, about one time constant


class EspBoard(EspChip):
    """See the module's docstring. It is also the serial port an RFC 2217 server drives: `baudrate`, `dtr`,
    `rts` set the adapter's line; `write` sends to the chip, `read` gives what the chip sent."""

    cts = dsr = ri = cd = False  # the adapter's inputs: nothing drives them
    is_open = True
    bytesize, parity, stopbits, xonxoff, rtscts, break_condition = 8, "N", 1, False, False, False

    def __init__(self, chip: str = "esp32", boot_button: bool = False, **chip_options):
        super().__init__(chip, **chip_options)
        self.loader = None  # running its firmware since it was plugged in
        self.timeout: float | None = None
        self.name = self.port = f"EspBoard({chip})"
        self._baudrate = ROM_BAUD
        self._dtr = self._rts = False
        self._button = boot_button
        self._en, self._io0 = True, not boot_button
        self._released_at: float | None = None  # when EN was last let go, while the chip is still in reset
        self._io0_since_release: list[tuple[float, bool]] = []
        self._received = bytearray()  # what the chip sent, waiting in the adapter for the host to read
        self._arrived = threading.Condition(self._lock)
        self._node = os.open(os.devnull, os.O_RDONLY)  # the adapter's device node, as far as ioctl is concerned

    def __enter__(self) -> "EspBoard":
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self._node)

    def __repr__(self) -> str:
        return f"<EspBoard {self.chip}, {self.loader or 'not answering'}, {self.baud} baud>"

    # ------------------------------------------------------------------------------------------- the circuit

    @property
    def boot_button(self) -> bool:
        return self._button

    @boot_button.setter
    def boot_button(self, held: bool) -> None:
        with self._lock:
            self._button = held
            self._set_lines(self._dtr, self._rts)

    def _set_lines(self, dtr: bool, rts: bool) -> None:
        now = time.monotonic()
        self._settle(now)
        self._dtr, self._rts = dtr, rts
        en = not (rts and not dtr)
        io0 = not (dtr and not rts) and not self._button
        if io0 != self._io0:
            self._io0 = io0
            self._io0_since_release.append((now, io0))
        if en == self._en:
            return
        self._en = en
        if not en:
            self._released_at = None
            self.hold_in_reset()
            return
        self._released_at = now
        self._io0_since_release = [(now, io0)]
        timer = threading.Timer(EN_RISE, self._tick)
        timer.daemon = True
        timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._settle(time.monotonic())

    def _settle(self, now: float) -> None:
        """Leave reset if EN has been up long enough, with IO0 as it was at that moment (the timer that
        should have done it may run late; what happened on the lines since is kept)."""
        if self._released_at is None or now < self._released_at + EN_RISE:
            return
        at = self._released_at + EN_RISE
        io0 = [level for when, level in self._io0_since_release if when <= at][-1]
        self._released_at = None
        self.restart(download=not io0)

    # ------------------------------------------------------------------------------------------- the port

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        with self._lock:
            self._set_lines(bool(value), self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        with self._lock:
            self._set_lines(self._dtr, bool(value))

    def setDTR(self, value: bool = True) -> None:  # noqa: N802 (pyserial's name)
        self.dtr = value

    def setRTS(self, value: bool = True) -> None:  # noqa: N802
        self.rts = value

    @property
    def modem_bits(self) -> int:
        return (termios.TIOCM_DTR if self._dtr else 0) | (termios.TIOCM_RTS if self._rts else 0)

    @modem_bits.setter
    def modem_bits(self, bits: int) -> None:
        """Both lines at once, as TIOCMSET sets them."""
        with self._lock:
            self._set_lines(bool(bits & termios.TIOCM_DTR), bool(bits & termios.TIOCM_RTS))

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @baudrate.setter
    def baudrate(self, rate: int) -> None:
        with self._lock:
            self._baudrate = rate

    def _host_baud(self) -> int:
        return self._baudrate

    def receive(self, data: bytes) -> None:
        with self._lock:
            self._settle(time.monotonic())
            super().receive(data)

    def write(self, data: bytes) -> int:
        self.receive(data)
        return len(data)

    def _transmit(self, data: bytes) -> None:
        self._received += data
        self._arrived.notify_all()

    def read(self, size: int = 1) -> bytes:
        with self._arrived:
            self._arrived.wait_for(lambda: self._received, self.timeout)
            data = bytes(self._received[:size])
            del self._received[:size]
            return data

    @property
    def in_waiting(self) -> int:
        return len(self._received)

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._received.clear()

    def reset_output_buffer(self) -> None:
        pass  # what the host writes reaches the chip at once

    def isOpen(self) -> bool:  # noqa: N802
        return True

    def open(self) -> None:
        pass  # the adapter stays plugged in

    def fileno(self) -> int:
        return self._node


class _ModemControl:
    """The `fcntl` module as esp_pylib's reset sequences see it: TIOCMGET and TIOCMSET on a board's device
    node are answered by the board, as an adapter's kernel driver would answer them; all else is fcntl's."""

    def __init__(self, real, boards: dict[int, EspBoard]):
        self._real = real
        self._boards = boards

    def ioctl(self, fd, request, arg=0, *more):
        board = self._boards.get(fd)
        if board is None:
            return self._real.ioctl(fd, request, arg, *more)
        if request == termios.TIOCMGET:
            return struct.pack("I", board.modem_bits)
        if request == termios.TIOCMSET:
            board.modem_bits = struct.unpack("I", arg)[0]
            return arg
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def modem_control_of(board: EspBoard):
    real = esp_pylib.serial_reset.fcntl
    esp_pylib.serial_reset.fcntl = _ModemControl(real, {board.fileno(): board})
    try:
        yield
    finally:
        esp_pylib.serial_reset.fcntl = real


class Rfc2217Server:
    """An RFC 2217 server for `board` on 127.0.0.1, one client at a time (see the module's docstring)."""

    def __init__(self, board: EspBoard, espressif: bool = True):
        self.board = board
        self.espressif = espressif
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"RFC 2217 for {board.name}", daemon=True)
        self._modem_control = modem_control_of(board) if espressif else contextlib.nullcontext()

    @property
    def url(self) -> str:
        port = self._listener.getsockname()[1]
        return f"rfc2217://127.0.0.1:{port}"

    def __enter__(self) -> "Rfc2217Server":
        self._modem_control.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        self._modem_control.__exit__(None, None, None)
        for closing in (self._listener.close, lambda: os.close(self._wake_read), lambda: os.close(self._wake_write)):
            closing()

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self._listener, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            client, _ = self._listener.accept()
            with client:
                if self._relay(client):
                    return

    def _relay(self, client: socket.socket) -> bool:
        """Copy bytes both ways until the client leaves (False) or the server stops (True). As both servers do,
        DTR and RTS are asserted while a client is connected, and let go when it leaves."""
        board = self.board
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        board.rts = True
        board.dtr = True
        sending = threading.Lock()

        class Connection:
            @staticmethod
            def write(data: bytes) -> None:
                with sending:
                    client.sendall(data)

        manager = EspPortManager(board, Connection, False) if self.espressif else \
            serial.rfc2217.PortManager(board, Connection)  # fmt: skip
        connected = threading.Event()
        connected.set()

        def chip_to_client() -> None:
            board.timeout = 0.05
            while connected.is_set():
                data = board.read(board.in_waiting or 1)
                if data:
                    with contextlib.suppress(OSError):
                        Connection.write(b"".join(manager.escape(data)))

        reader = threading.Thread(target=chip_to_client, name="RFC 2217 chip -> client", daemon=True)
        reader.start()
        stopping = False
        try:
            while True:
                readable, _, _ = select.select([client, self._wake_read], [], [])
                if self._wake_read in readable:
                    stopping = True
                    break
                data = client.recv(4096)
                if not data:
                    break
                board.write(b"".join(manager.filter(data)))
        except OSError:
            pass
        finally:
            connected.clear()
            reader.join(timeout=5)
            board.dtr = False
            board.rts = False
            board.baudrate = ROM_BAUD  # the port's settings as they were before the client changed them
        return stopping
