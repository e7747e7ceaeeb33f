# What the device says about itself: the retained status message and the status LED.
# MicroPython common subset. The LED's pin is injected (machine.Pin on a board, a recorder in the tests; for
# an RGB LED, a pixel.Pixel, which lights each state in its own colour).
#
# The status, retained on sensing/v1/{device}/status, is one JSON object:
#   {"dropped": 0, "faults": [{"sensor": "sht4x@0x44", "fault": "crc", "message": "..."}],
#    "message": "", "state": "online", "untimed": 0}
# state: "online", "config_invalid" (the device waits for a good config), "offline" (the last will, or a
# clean stop). message: one sentence, such as "config refused: interval must be at least 5 seconds".

try:
    from .encode import encode_json
except ImportError:  # copied flat onto a board
    from encode import encode_json

# The LED's patterns: one period each, as (level, milliseconds), repeated while the device is in that state.
# docs/firmware.md shows them to residents; keep the two in step.
PATTERNS = {
    "booting": ((1, 1000),),                                      # steady on
    "sending": ((1, 100), (0, 100)),                              # fast flicker
    "no_network": ((1, 1000), (0, 1000)),                         # slow blink, 1 s on, 1 s off
    "sensor_fault": ((1, 200), (0, 200), (1, 200), (0, 1400)),    # two short blinks, then a pause
    "config_invalid": ((1, 200), (0, 200), (1, 200), (0, 200), (1, 200), (0, 1200)),  # three blinks
    "ok": ((1, 50), (0, 2950)),                                   # a short blip every 3 s
}


def goodbye(state="offline"):
    """The status of a device that is gone: "offline" (its last will, a clean stop) or "asleep"."""
    return encode_json({"state": state})


class Status:
    def __init__(self, buf=None):
        self.buf = buf          # the reading buffer, whose counts of lost readings the status carries
        self.state = "online"
        self.message = ""
        self.boot_faults = []   # found when the sensors were detected: stay until the next start
        self.faults = []        # this cycle's
        self.dropped = 0
        self.untimed = 0
        self.network = True     # whether the last attempt to reach the hub or the network worked

    def all_faults(self):
        return self.boot_faults + self.faults

    def encode(self):
        if self.buf is not None:
            self.dropped, self.untimed = self.buf.dropped, self.buf.untimed
        return encode_json({"state": self.state, "message": self.message, "faults": self.all_faults(),
                                  "dropped": self.dropped, "untimed": self.untimed})

    def led_state(self):
        """Which LED pattern fits: a bad config first, then no network, then a sensor fault."""
        if self.state == "config_invalid":
            return "config_invalid"
        if not self.network:
            return "no_network"
        if self.all_faults():
            return "sensor_fault"
        return "ok"


class Led:
    """Plays PATTERNS on a pin. Time moves only through play(), so the pattern keeps its phase across
    the waits it is played in, and a test sees exactly which level was set when."""

    def __init__(self, pin=None, enabled=True):
        self.board_pin = pin
        self.pin = pin if enabled else None
        self.pattern = PATTERNS["booting"]
        self.step = 0
        self.left_ms = self.pattern[0][1]
        self._set(self.pattern[0][0])

    def _set(self, level):
        if self.pin is not None:
            self.pin.value(level)

    def show(self, name):
        pattern = PATTERNS[name]
        if pattern is self.pattern:
            return
        self.pattern = pattern
        tint = getattr(self.board_pin, "tint", None)  # an RGB LED: the state's colour; a plain pin has none
        if tint is not None:
            tint(name)
        self.step = 0
        self.left_ms = pattern[0][1]
        self._set(pattern[0][0])

    def enable(self, on):
        """Turn the patterns on or off (the `led` setting); off leaves the LED dark."""
        self._set(0)
        self.pin = self.board_pin if on else None
        self._set(self.pattern[self.step][0])

    def off(self):
        self._set(0)

    def until_change_ms(self):
        """How long the LED holds its level; None when there is no LED to play."""
        if self.pin is None:
            return None
        return self.left_ms

    def advance(self, ms):
        """`ms` milliseconds have passed: move through the pattern, setting the pin at each step."""
        if self.pin is None:
            return
        while ms >= self.left_ms:
            ms -= self.left_ms
            self.step = (self.step + 1) % len(self.pattern)
            self.left_ms = self.pattern[self.step][1]
            self._set(self.pattern[self.step][0])
        self.left_ms -= ms
