# Running unattended: the watchdog, waiting between readings (awake, light or deep sleep), and the little
# state that must outlive a deep sleep. MicroPython common subset; `machine` is passed in, so the unix port
# (which has no WDT, lightsleep or deepsleep) and the tests get stand-ins.
#
#   power = Power(config, machine, led)
#   power.feed()                      # the main loop, every cycle and between the steps of a long wait
#   power.rest(60)                    # the wait between readings, the watchdog fed, the LED playing
#   power.deep_sleep(60, {"seq": 17}) # keep the state, then sleep; on a board the next thing is a restart

import json
import time

try:
    from .buffer import Files, join, read_atomic, write_atomic
except ImportError:  # copied flat onto a board
    from buffer import Files, join, read_atomic, write_atomic


class NoWatchdog:
    """Where the port has no machine.WDT (the unix port), or the config turns it off."""

    def feed(self):
        pass


def watchdog(machine, timeout_ms):
    """machine.WDT(timeout=timeout_ms), started now, or a NoWatchdog. Once started it cannot be stopped."""
    if not timeout_ms or machine is None or not hasattr(machine, "WDT"):
        return NoWatchdog()
    return machine.WDT(timeout=timeout_ms)


class SleepState:
    """A small JSON state that outlives a deep sleep: in ESP32's RTC memory (`rtc`; it survives deep sleep,
    not a power cut), or in the file at `path` for boards without RTC memory (rp2)."""

    def __init__(self, rtc=None, path=None, files=None):
        self.rtc = rtc
        self.path = path
        self.files = files or Files()

    def load(self):
        try:
            return json.loads(self.rtc.memory() if self.rtc else read_atomic(self.files, self.path)) or {}
        except (ValueError, TypeError):
            return {}

    def save(self, state):
        data = json.dumps(state).encode()
        if self.rtc:
            self.rtc.memory(data)
        else:
            write_atomic(self.files, self.path, data)


def state_store(machine, state_dir, files=None):
    rtc = machine.RTC() if machine is not None and hasattr(machine, "RTC") else None
    if rtc is not None and hasattr(rtc, "memory"):
        return SleepState(rtc)
    return SleepState(None, join(state_dir, "sleep.json"), files)


class Power:
    """How the device waits. `sleep` takes seconds (time.sleep, or a test's); lightsleep and deepsleep take
    milliseconds, from `machine` when it has them, else the wait is `sleep` and the program carries on."""

    def __init__(self, mode="none", machine=None, led=None, wdt=None, watchdog_ms=0, sleep=time.sleep,
                 store=None):
        self.mode = mode
        self.led = led
        self.wdt = wdt or NoWatchdog()
        self.feed_ms = watchdog_ms // 2 if watchdog_ms else None  # feed at twice the watchdog's rate
        self.sleep = sleep
        self.store = store
        self.lightsleep = getattr(machine, "lightsleep", None) if machine is not None else None
        self.deepsleep = getattr(machine, "deepsleep", None) if machine is not None else None

    def feed(self):
        self.wdt.feed()

    def rest(self, seconds):
        """Wait `seconds`, in steps short enough to feed the watchdog and play the LED (awake), or with the
        LED dark (light sleep). Calls `sleep` at least once, even for 0 s."""
        light = self.mode != "none" and self.lightsleep is not None
        if self.led is not None and self.mode != "none":
            self.led.off()
        left = seconds * 1000
        while True:
            step = left
            if self.feed_ms is not None:
                step = min(step, self.feed_ms)
            if not light and self.led is not None and self.mode == "none":
                change = self.led.until_change_ms()
                if change is not None:
                    step = min(step, change)
            if light:
                self.lightsleep(int(step))
            else:
                self.sleep(step / 1000)
            if self.led is not None and self.mode == "none":
                self.led.advance(step)
            self.feed()
            left -= step
            if left <= 0:
                return

    def deep_sleep(self, seconds, state):
        """Keep `state` where it outlives the sleep, then sleep. On a board with machine.deepsleep this
        does not return: the board starts again from main.py. Elsewhere it waits like rest()."""
        if self.store is not None:
            self.store.save(state)
        if self.led is not None:
            self.led.off()
        if self.deepsleep is not None:
            self.deepsleep(int(seconds * 1000))
            return True
        self.rest(seconds)
        return False

    def woke(self):
        """The state kept by the last deep sleep ({} after a power on), which is then forgotten."""
        if self.store is None:
            return {}
        state = self.store.load()
        if state:
            self.store.save({})
        return state
