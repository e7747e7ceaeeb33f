# The RGB status LED: one WS2812 ("NeoPixel"), as on the ESP32-S3 and ESP32-C3 DevKits, played by status.Led
# like a plain LED's pin, each state in its own colour. MicroPython common subset. board.led_pin imports this
# only for a pin map whose LED is "kind": "neopixel", and hands in MicroPython's `neopixel` module (frozen into
# its ESP32 builds; a fake in the tests).

# (red, green, blue), kept dim: the LED sits in a home, and a WS2812 at full power dazzles. The blink
# patterns are a plain LED's (status.PATTERNS), so the rhythm alone still tells the states apart to anyone
# who cannot tell these colours apart. docs/firmware.md shows them to residents; keep the two in step.
COLOURS = {
    "booting": (24, 24, 24),        # white
    "ok": (0, 32, 0),               # green
    "sending": (0, 0, 40),          # blue
    "no_network": (40, 16, 0),      # amber
    "sensor_fault": (48, 0, 0),     # red
    "config_invalid": (32, 0, 32),  # purple
}
DARK = (0, 0, 0)


class Pixel:
    """A WS2812 driven like a Pin: value(1) lights it in the colour of the state last given to tint(),
    value(0) turns it off."""

    def __init__(self, np):
        self.np = np
        self.colour = COLOURS["booting"]

    def tint(self, state):
        self.colour = COLOURS[state]

    def value(self, level):
        self.np[0] = self.colour if level else DARK
        self.np.write()
