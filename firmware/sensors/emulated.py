# An emulated temperature and humidity sensor for tests and workshops without a chip.
# Deterministic for a given seed: its own linear congruential generator, so CPython and MicroPython
# (whose `random` differ) give the same series.

import math


class EmulatedSensor:
    def __init__(self, seed=1, start_temperature=19.0, start_humidity=55.0):
        self.state = seed & 0x7FFFFFFF
        self.step = 0
        self.temperature = start_temperature
        self.humidity = start_humidity

    def _noise(self):
        # A value in [-1, 1); 31-bit LCG (glibc constants) stays within MicroPython's small ints.
        self.state = (1103515245 * self.state + 12345) & 0x7FFFFFFF
        return (self.state >> 8) / float(1 << 22) - 1.0

    def read(self):
        """One reading: temperature (0.1 °C) drifting around a daily cycle, humidity (0.5 %) moving against it."""
        self.step += 1
        daily = math.sin(self.step * 2 * math.pi / 96)  # 96 readings a "day"
        self.temperature += 0.2 * self._noise() + 0.05 * (19.0 + 3.0 * daily - self.temperature)
        self.humidity += 1.0 * self._noise() + 0.05 * (55.0 - 10.0 * daily - self.humidity)
        t = min(max(self.temperature, -10.0), 40.0)
        h = min(max(self.humidity, 5.0), 99.0)
        return {"temperature": round(t * 10) / 10, "humidity": round(h * 2) / 2}
