# What time it is, in Unix seconds, and what to do with readings taken before anyone knew.
# MicroPython common subset. Everything is injectable: the board clock, the millisecond ticks, NTP.
#
# A board's clock starts at a fixed date at power on (2000-01-01 on ESP32, 2021 on rp2); a laptop's is
# right. So the clock is trusted when it reads after 2025, else the time comes from NTP: the answer is
# kept as an anchor (uptime ms, Unix seconds), and the time is the anchor plus the uptime since.
# When NTP answers, the board's real-time clock (machine.RTC) is set to it as well, in UTC: time.time(),
# time.localtime() and mbedTLS's certificate date checks follow that clock, and it outlives a soft reset
# and a deep sleep, so the next start finds it right and times its readings without asking NTP first.
# The RTC is set and read as a calendar date (RTC.datetime), which is the same on every port whatever
# its epoch (2000 on ESP32, 1970 on rp2), so no epoch arithmetic can go wrong there.
# A reading taken before the time is known is stamped with the boot id and its uptime instead. Once this
# boot has an anchor, its time follows exactly. Anchors are kept on flash for the last few boots, so a
# reading of a boot that later got the time is fixed even after a reboot. A reading whose boot never got
# the time cannot be placed: it is never sent with a made-up time (see app.py).
# Asking the time server and setting the RTC (ntp.py) happen every few hours: that module is loaded for it
# and let go afterwards.

import time

try:
    from .buffer import Files, load, read_atomic, release, write_atomic
except ImportError:  # copied flat onto a board
    from buffer import Files, load, read_atomic, release, write_atomic

EPOCH_2000 = 946684800      # Unix seconds at 2000-01-01, the epoch of ESP32 (and older rp2 builds)
VALID_AFTER = 1735689600    # 2025-01-01: a clock reading earlier has not been set
ANCHORS_KEPT = 4


def board_time(seconds=time.time, gmtime=time.gmtime):
    """The board's clock in Unix seconds, whatever the port's epoch (time.time() counts from 2000 on
    ESP32, from 1970 elsewhere)."""
    t = int(seconds())
    if gmtime(0)[0] == 2000:
        t += EPOCH_2000
    return t


def unix_of(year, month, day, hour=0, minute=0, second=0):
    """Unix seconds of a date and time in UTC: the inverse of civil() (days_from_civil)."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def board_rtc(machine):
    """machine.RTC() where the port has one with datetime(), else None (the unix port)."""
    if machine is None or not hasattr(machine, "RTC"):
        return None
    rtc = machine.RTC()
    return rtc if hasattr(rtc, "datetime") else None


def rtc_time(rtc):
    """A function reading a machine.RTC as Unix seconds."""
    def now():
        t = rtc.datetime()
        return unix_of(t[0], t[1], t[2], t[4], t[5], t[6])
    return now


def _ticks():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _ticks_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


class Clock:
    def __init__(self, boot, path=None, now=None, ticks=_ticks, ticks_diff=_ticks_diff, ntp=None,
                 files=None, rtc=None):
        self.boot = boot
        self.path = path          # the anchors file, or None to keep them in memory only
        self.rtc = rtc            # a machine.RTC, set when NTP answers; None where there is none
        if now is None:           # the board's clock: its RTC where it has one
            now = board_time if rtc is None else rtc_time(rtc)
        self.now = now
        self.ticks = ticks
        self.ticks_diff = ticks_diff
        self.ntp = ntp            # a function returning Unix seconds, or None
        self.files = files or Files()
        self._last = ticks()
        self._ms = 0              # uptime in ms, kept past the ticks' wrap (every 12.4 days on a board)
        self.anchors = self._load()  # boot id -> (uptime ms, Unix seconds) when that boot got the time
        self.anchors.pop(boot, None)

    def uptime_ms(self):
        # Called at least every reading, so far more often than the 6 days ticks_diff can span.
        t = self.ticks()
        self._ms += self.ticks_diff(t, self._last)
        self._last = t
        return self._ms

    def time(self):
        """Unix seconds now, or None while the time is not known."""
        anchor = self.anchors.get(self.boot)
        if anchor is not None:
            return anchor[1] + (self.uptime_ms() - anchor[0] + 500) // 1000
        t = self.now()
        return t if t >= VALID_AFTER else None

    def sync_due(self, every):
        """True when NTP should be asked: the board's clock has not been set and NTP has not answered in
        this boot, or it answered more than `every` seconds ago (the board's clock drifts, in a deep sleep
        too). A clock right from the start (a laptop's, or an RTC set by an earlier boot) is asked again
        only once `every` seconds have passed since the last answer an earlier boot kept."""
        if self.ntp is None:
            return False
        anchor = self.anchors.get(self.boot)
        if anchor is None:
            now = self.now()
            if now < VALID_AFTER:
                return True
            if not self.anchors:
                return False  # never asked: a clock set some other way
            last = max([a[1] for a in self.anchors.values()])
            return not 0 <= now - last < every  # a clock behind the last answer is wrong too
        return self.uptime_ms() - anchor[0] >= every * 1000

    def sync(self):
        """Ask NTP and keep the answer. Raises OSError when NTP fails."""
        unix = self.ntp()
        if unix < VALID_AFTER:
            raise OSError("the time server said %d, before 2025" % unix)
        self.anchors[self.boot] = (self.uptime_ms(), unix)
        while len(self.anchors) > ANCHORS_KEPT:
            self.anchors.pop(min(self.anchors))
        self._save()
        if self.rtc is not None:
            rtc = load("ntp")  # used every few hours: not kept in the heap in between
            rtc.set_rtc(self.rtc, unix)
            release(rtc)
        return unix

    def time_of(self, boot, ms):
        """Unix seconds of a moment `ms` into boot `boot`, or None when that boot has no time (yet)."""
        anchor = self.anchors.get(boot)
        if anchor is None:
            if boot == self.boot and self.time() is not None:  # the clock was right from the start
                return self.time() - (self.uptime_ms() - ms + 500) // 1000
            return None
        return anchor[1] + (ms - anchor[0] + 500) // 1000  # to the nearest second

    def _load(self):
        anchors = {}
        if self.path is None:
            return anchors
        data = read_atomic(self.files, self.path)
        try:
            for line in data.decode().split("\n"):
                if line.strip():
                    boot, ms, unix = [int(x) for x in line.split()]
                    anchors[boot] = (ms, unix)
        except (AttributeError, ValueError, UnicodeError):
            return {}
        return anchors

    def _save(self):
        if self.path is None:
            return
        lines = ["%d %d %d\n" % (b, self.anchors[b][0], self.anchors[b][1]) for b in sorted(self.anchors)]
        write_atomic(self.files, self.path, "".join(lines).encode())


def next_boot(path, files=None):
    """Count this start: the boot id, one more than the last, kept on flash."""
    files = files or Files()
    try:
        boot = int(read_atomic(files, path).decode().strip()) + 1
    except (AttributeError, ValueError, UnicodeError):
        boot = 1
    write_atomic(files, path, b"%d\n" % boot)
    return boot
