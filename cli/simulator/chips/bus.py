# Fake buses with the methods the drivers use from machine.I2C, machine.UART and onewire.OneWire, and the
# simulated clock the chips measure time by.

ENODEV = 19  # what ESP32's machine.I2C raises for an address nobody acknowledges
EIO = 5      # what rp2's raises, and what a chip's NACK of a read header or a command gives


class Clock:
    def __init__(self, now_ms=0):
        self.now_ms = now_ms

    def sleep_ms(self, ms):
        self.now_ms += ms


class Chip:
    """What every emulated chip has: presence, injected faults, an optional series of values."""

    def __init__(self, **values):
        self.present = True
        self.corrupt = 0
        self.stuck = False
        self.frozen = None  # the raw value a stuck chip keeps giving
        self.series = None
        self.clock = None
        self.values = values

    def now(self):
        return self.clock.now_ms if self.clock is not None else 0

    def value(self, quantity):
        if self.series is not None:
            return self.series.at(self.now())[quantity]
        return self.values[quantity]

    def set(self, **values):
        self.values.update(values)

    def measured(self, raw):
        """`raw`, or while the chip is stuck, the first raw value it gave after getting stuck."""
        if self.stuck:
            if self.frozen is None:
                self.frozen = raw
            return self.frozen
        self.frozen = None
        return raw

    def take_corrupt(self):
        if self.corrupt > 0:
            self.corrupt -= 1
            return True
        return False


class FakeI2C:
    """machine.I2C: scan, writeto, readfrom, readfrom_into, readfrom_mem, writeto_mem. A chip that is absent
    (or not there) makes the call raise OSError(nack_errno), as machine.I2C does for an unacknowledged address."""

    def __init__(self, chips=(), clock=None, nack_errno=ENODEV):
        self.clock = clock or Clock()
        self.nack_errno = nack_errno
        self.chips = {}
        for chip in chips:
            self.attach(chip)

    def attach(self, chip):
        chip.clock = self.clock
        self.chips[chip.address] = chip

    def _chip(self, address):
        chip = self.chips.get(address)
        if chip is None or not chip.present:
            raise OSError(self.nack_errno)
        return chip

    def scan(self):
        return sorted([a for a in self.chips if self.chips[a].present])

    def writeto(self, address, buf, stop=True):
        chip = self._chip(address)
        chip.on_write(bytes(buf))
        return len(buf)

    def readfrom(self, address, n, stop=True):
        chip = self._chip(address)
        return bytes(chip.on_read(n))

    def readfrom_into(self, address, buf, stop=True):
        data = self.readfrom(address, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom_mem(self, address, register, n):
        self._chip(address).on_write(bytes([register]))
        return self.readfrom(address, n)

    def writeto_mem(self, address, register, buf):
        self.writeto(address, bytes([register]) + bytes(buf))


class FakeUART:
    """machine.UART: any, read, write. The chip's frames arrive as the clock moves on; the receive buffer
    holds at most rxbuf bytes (the oldest are lost), and `chunk` limits the bytes one read() returns."""

    def __init__(self, chip, clock=None, rxbuf=256, chunk=None):
        self.chip = chip
        self.clock = clock or Clock()
        chip.clock = self.clock
        self.rxbuf = rxbuf
        self.chunk = chunk
        self.buffer = b""
        self.until_ms = self.clock.now_ms

    def _receive(self):
        now = self.clock.now_ms
        if now > self.until_ms:
            if self.chip.present:
                self.buffer = (self.buffer + self.chip.stream(self.until_ms, now))[-self.rxbuf:]
            self.until_ms = now

    def any(self):
        self._receive()
        return len(self.buffer)

    def read(self, n=None):
        self._receive()
        if not self.buffer:
            return None
        if n is None:
            n = len(self.buffer)
        if self.chunk is not None:
            n = min(n, self.chunk)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def write(self, buf):
        return len(buf)  # the sensors run in their active mode: nothing the driver sends matters yet


class FakeOneWire:
    """onewire.OneWire: reset, writebyte, write, readbyte, readinto, scan, with chips that follow the 1-Wire
    ROM and function commands. Several chips answering at once give the wired-AND of their bytes."""

    def __init__(self, chips=(), clock=None):
        self.clock = clock or Clock()
        self.chips = list(chips)
        for chip in self.chips:
            chip.clock = self.clock
        self.state = "idle"
        self.selected = []
        self.match = b""
        self.out = b""

    def _present(self):
        return [c for c in self.chips if c.present]

    def reset(self, required=False):
        self.state = "rom"
        self.selected = []
        self.out = b""
        if not self._present():
            if required:
                raise OSError(EIO)
            return False
        return True

    def writebyte(self, value):
        if self.state == "rom":
            if value == 0xCC:
                self.selected = self._present()
                self.state = "function"
            elif value == 0x55:
                self.match = b""
                self.state = "match"
            else:
                self.state = "idle"
        elif self.state == "match":
            self.match += bytes([value])
            if len(self.match) == 8:
                self.selected = [c for c in self._present() if c.rom == self.match]
                self.state = "function"
        elif self.state == "function":
            if value == 0x44:
                for chip in self.selected:
                    chip.convert()
                self.state = "idle"
            elif value == 0xBE:
                out = None
                for chip in self.selected:
                    pad = chip.scratchpad()
                    out = pad if out is None else bytes([out[i] & pad[i] for i in range(len(pad))])
                self.out = out or b""
                self.state = "reading"
            else:
                self.state = "idle"

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def readbyte(self):
        if self.state == "reading" and self.out:
            b, self.out = self.out[0], self.out[1:]
            return b
        return 0xFF  # nobody pulls the wire low: all ones

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def scan(self):
        return [bytearray(c.rom) for c in self._present()]
