# Plausible series of sensor values for emulated chips and the simulated fleet (`sensing simulate`): indoor
# (a home with a daily rhythm, cooking and people) or outdoor air, as a deterministic function of time and seed.
# Same seed and time, same values, under CPython and MicroPython alike (own integer hash, no `random`).

import math

DAY_MS = 86400000


def _noise(seed, step):
    # A value in [-1, 1) from (seed, step): a 31-bit LCG step applied to a mix of both.
    x = (seed * 7919 + step * 104729 + 12345) & 0x7FFFFFFF
    for _ in range(3):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
    return (x >> 8) / float(1 << 22) - 1.0


class Series:
    """series.at(ms) -> {quantity: value} for every quantity the emulated chips give.

    profile "indoor": 19-22 °C with a daily cycle, humidity 45-65 % rising with showers and cooking, CO2
    from 450 ppm to about 1400 ppm overnight in a bedroom, PM bursts when cooking, a wall surface 2-5 °C
    below the room. "outdoor": a cooler, damper daily cycle, PM from traffic peaks, CO2 near 420 ppm."""

    def __init__(self, profile="indoor", seed=1, step_ms=60000):
        if profile not in ("indoor", "outdoor"):
            raise ValueError("profile must be 'indoor' or 'outdoor'")
        self.profile = profile
        self.seed = seed
        self.step_ms = step_ms

    def at(self, ms):
        step = int(ms // self.step_ms)
        hour = (ms % DAY_MS) / 3600000.0
        day = math.sin((hour - 9) * math.pi / 12)       # +1 at 15:00, -1 at 03:00
        n1, n2, n3 = _noise(self.seed, step), _noise(self.seed + 1, step), _noise(self.seed + 2, step)
        pressure = 1013.0 + 8.0 * math.sin(ms / (3.0 * DAY_MS) * 2 * math.pi + self.seed) + 0.2 * n3
        if self.profile == "indoor":
            cooking = 1.0 if 18.0 <= hour < 19.0 else 0.0
            asleep = 1.0 if hour >= 23.0 or hour < 7.0 else 0.0
            t = 20.5 + 1.5 * day + 0.1 * n1
            rh = 55.0 - 6.0 * day + 8.0 * cooking + 0.5 * n2
            co2 = 480 + 850 * asleep + 200 * cooking + 15 * n3
            pm2_5 = 5.0 + 30.0 * cooking + 1.0 * n1
            surface = t - 3.5 - 1.5 * (1 - day) / 2 + 0.05 * n2
        else:
            rush = 1.0 if 7.5 <= hour < 9.5 or 16.5 <= hour < 18.5 else 0.0
            t = 11.0 + 5.0 * day + 0.2 * n1
            rh = 78.0 - 15.0 * day + 1.0 * n2
            co2 = 420 + 30 * rush + 5 * n3
            pm2_5 = 8.0 + 10.0 * rush + 1.5 * n1
            surface = t
        pm2_5 = max(pm2_5, 0.5)
        return {"temperature": round(t, 2), "humidity": round(min(max(rh, 5.0), 99.0), 2),
                "pressure": round(pressure, 2), "co2": int(round(co2)),
                "pm1": round(pm2_5 * 0.7, 1), "pm2_5": round(pm2_5, 1), "pm10": round(pm2_5 * 1.5, 1),
                "surface_temperature": round(surface, 2)}
