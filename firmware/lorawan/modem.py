# The AT layer every LoRaWAN modem driver shares: lines out, lines in with a deadline, one error type.
# MicroPython-compatible. The UART is injected (machine.UART on a board, a fake in the tests): only its
# write(bytes), any() and read(n) are used, so nothing blocks longer than one poll. The clock is injected
# too, so the tests run a 20 s join in virtual time.

import time

# What went wrong, as ModemError.kind; the app decides from it whether to rejoin, wait or retry.
TIMEOUT = "timeout"  # the modem did not answer in time: wiring, power, baud rate
JOIN_FAILED = "join_failed"  # no join accept: coverage, keys, or the device is not registered
NOT_JOINED = "not_joined"  # the modem has no session: join again
BUSY = "busy"  # the modem is still busy with an earlier send or join
DUTY_CYCLE = "duty_cycle"  # the regional duty-cycle limit holds the radio back for now
NO_ACK = "no_ack"  # a confirmed uplink was not acknowledged by the network
TOO_LONG = "too_long"  # the payload does not fit the current data rate
REFUSED = "refused"  # the modem refused the command or its parameters

MAX_PAYLOAD = 242  # the largest LoRaWAN application payload at any EU868 data rate


class ModemError(Exception):
    """One failure of the modem, with `kind` (one of the names above) and a one-sentence message."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Clock:
    """Milliseconds from MicroPython's time module; tests pass an object with the same three methods."""

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def sleep_ms(self, ms):
        time.sleep_ms(ms)


class ATPort:
    """Send command lines and read reply lines, each read bounded by a deadline."""

    def __init__(self, uart, clock=None, poll_ms=10):
        self.uart = uart
        self.clock = clock or Clock()
        self.poll_ms = poll_ms
        self._buf = b""
        self.last_command = None

    def send(self, line):
        self.last_command = line
        self.uart.write(line.encode() + b"\r\n")

    def discard(self):
        """Drop whatever the modem said before the next command, so stale lines are not taken as its reply."""
        self._buf = b""
        while self.uart.any():
            if not self.uart.read(self.uart.any()):
                break

    def deadline(self, timeout_ms):
        return (self.clock.ticks_ms(), timeout_ms)

    def read_line(self, deadline):
        """The next non-empty line without its line ending, or None once `deadline` has passed."""
        start, timeout_ms = deadline
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                raw = self._buf[:end]
                self._buf = self._buf[end + 1:]
                try:
                    text = raw.decode().strip()
                except UnicodeError:  # line noise, e.g. while the modem boots: not a reply
                    continue
                if text:
                    return text
                continue
            waiting = self.uart.any()
            if waiting:
                chunk = self.uart.read(waiting)
                if chunk:
                    self._buf += chunk
                    continue
            if self.clock.ticks_diff(self.clock.ticks_ms(), start) >= timeout_ms:
                return None
            self.clock.sleep_ms(self.poll_ms)


def check_hex(what, value, digits):
    """`value` as upper-case hex of exactly `digits` digits (separators ':', '-', ' ' allowed), or ValueError."""
    text = str(value).replace(":", "").replace("-", "").replace(" ", "").upper()
    if len(text) != digits:
        raise ValueError("the %s must be %d hex digits, not %d" % (what, digits, len(text)))
    for ch in text:
        if ch not in "0123456789ABCDEF":
            raise ValueError("the %s may hold only hex digits (0-9, A-F), not '%s'" % (what, ch))
    return text


def to_hex(data):
    return "".join(["%02X" % b for b in data])


def from_hex(text):
    text = text.strip().replace(" ", "")
    if len(text) % 2:
        raise ValueError("odd number of hex digits")
    return bytes([int(text[i:i + 2], 16) for i in range(0, len(text), 2)])


class Modem:
    """What every driver offers: configure, join, send. Subclasses speak their modem's AT dialect."""

    name = "modem"
    REGIONS = {}  # region name -> what the modem's AT command takes

    def __init__(self, uart, clock=None, command_ms=2000, join_ms=20000, send_ms=20000, confirmed_ms=45000):
        self.port = ATPort(uart, clock)
        self.clock = self.port.clock
        self.command_ms = command_ms
        self.join_ms = join_ms
        self.send_ms = send_ms
        self.confirmed_ms = confirmed_ms
        self.joined = False

    # --- for subclasses

    def timeout(self, what, ms):
        return ModemError(TIMEOUT, "the %s did not answer %s within %d s: check its wiring, power and baud rate"
                          % (self.name, what, ms // 1000))

    def region_code(self, region):
        code = self.REGIONS.get(region)
        if code is None:
            names = sorted(self.REGIONS)
            raise ValueError("the %s does not know region '%s' (use one of %s)" % (self.name, region, ", ".join(names)))
        return code

    # --- the interface

    def configure(self, dev_eui, app_eui, app_key, region="EU868", data_rate=None, adr=True):
        raise NotImplementedError

    def join(self):
        raise NotImplementedError

    def send(self, port, payload, confirmed=False):
        raise NotImplementedError

    def join_with_retries(self, attempts=3, wait_ms=10000):
        """Join, trying again after `wait_ms` (doubled each time) when the join fails or the modem is busy.
        Raises the last ModemError when every attempt failed."""
        error = None
        for attempt in range(attempts):
            if attempt:
                self.clock.sleep_ms(wait_ms)
                wait_ms *= 2
            try:
                self.join()
                return attempt + 1
            except ModemError as exc:
                if exc.kind not in (JOIN_FAILED, BUSY, DUTY_CYCLE, TIMEOUT):
                    raise
                error = exc
        raise error

    def check_uplink(self, port, payload):
        if not isinstance(port, int) or port < 1 or port > 223:
            raise ValueError("the LoRaWAN port must be 1 to 223, not %r" % (port,))
        if not payload:
            raise ValueError("an uplink needs at least one byte")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("an uplink holds at most %d bytes, not %d" % (MAX_PAYLOAD, len(payload)))
