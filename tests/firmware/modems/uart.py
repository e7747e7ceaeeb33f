# A virtual clock and a fake UART: what the driver writes goes to an emulated modem line by line, and what
# the modem answers becomes readable once the virtual clock reaches the time the modem scheduled it for.


class VirtualClock:
    """time.ticks_ms / ticks_diff / sleep_ms, where sleeping only moves the clock on."""

    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        self.now += ms


class FakeUart:
    """machine.UART's write / any / read, wired to an emulated modem (see Emulator)."""

    def __init__(self, emulator):
        self.emulator = emulator
        self._partial = b""

    def write(self, data):
        self._partial += bytes(data)
        while b"\r\n" in self._partial:
            end = self._partial.index(b"\r\n")
            line = self._partial[:end].decode()
            self._partial = self._partial[end + 2:]
            self.emulator.receive(line)
        return len(data)

    def any(self):
        return len(self.emulator.due())

    def read(self, n=-1):
        data = self.emulator.due()
        if n is not None and n >= 0:
            data = data[:n]
        self.emulator.consume(len(data))
        return data or None


class Emulator:
    """What the emulated modems share: the commands heard, replies scheduled on the virtual clock, and
    `silent`, the number of next commands to ignore as a modem that has lost power would."""

    def __init__(self, clock):
        self.clock = clock
        self.received = []
        self.uplinks = []  # (port, hex, confirmed) of every uplink the modem put on the air
        self.silent = 0
        self._out = []  # [due_ms, bytes], in the order written
        self._read = 0  # bytes of the first due item already read

    def receive(self, line):
        self.received.append(line)
        if self.silent:
            self.silent -= 1
            return
        self.handle(line)

    def handle(self, line):
        raise NotImplementedError

    def say(self, text, after_ms=0):
        due = self.clock.now + after_ms
        if self._out and self._out[-1][0] > due:  # a serial line keeps its order
            due = self._out[-1][0]
        self._out.append([due, (text + "\r\n").encode()])

    def due(self):
        data = b""
        for when, chunk in self._out:
            if when > self.clock.now:
                break
            data += chunk
        return data[self._read:]

    def consume(self, n):
        self._read += n
        while self._out and self._read >= len(self._out[0][1]) and self._out[0][0] <= self.clock.now:
            self._read -= len(self._out[0][1])
            self._out.pop(0)


# EU868 largest application payload per data rate (LoRaWAN Regional Parameters, no repeater).
EU868_MAX_PAYLOAD = {0: 51, 1: 51, 2: 51, 3: 115, 4: 242, 5: 242}


def hex_bytes(text):
    return bytes([int(text[i:i + 2], 16) for i in range(0, len(text), 2)])
