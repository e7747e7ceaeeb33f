"""Time on the device, under the real MicroPython unix port: an injected board clock and ticks, a real UDP
time server of the test's own, and the firmware publishing to a real Mosquitto."""

import datetime
import os
import socket
import struct
import subprocess
import threading

import pytest

from tests.firmware.support import REPO
from tests.firmware.test_app import USERS, Subscriber, online, write_config
from tests.firmware.test_buffer import run_micropython

NTP_TO_UNIX = 2208988800
NOW = 1800000000  # what the test's time server says: 2027-01-15
VALID_AFTER = 1735689600
EPOCH_2000 = 946684800


class TimeServer:
    """An SNTP server on a free UDP port. Answers `refuse` requests with stratum 0 ("do not use me"),
    then with `unix` as the transmit time."""

    def __init__(self, unix=NOW, refuse=0):
        self.unix = unix
        self.refuse = refuse
        self.asked = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                query, addr = self.sock.recvfrom(48)
            except OSError:
                return
            self.asked += 1
            stratum = 0 if self.asked <= self.refuse else 2
            seconds = (self.unix + NTP_TO_UNIX) & 0xFFFFFFFF  # NTP's 32-bit seconds wrap in 2036
            answer = struct.pack(">BBBb", 0x1C, stratum, 0, -20) + bytes(36) + struct.pack(">II", seconds, 0)
            self.sock.sendto(answer, addr)

    def close(self):
        self.sock.close()


@pytest.fixture
def time_server(request):
    server = TimeServer(**getattr(request, "param", {}))
    yield server
    server.close()


CLOCK = """
import json
from firmware.clock import Clock, board_time, EPOCH_2000
from firmware.ntp import sntp

class Ticks:
    # A board's millisecond counter: wraps at 2**30, as on ESP32 and rp2.
    def __init__(self, start):
        self.t = start
    def __call__(self):
        return self.t
    def advance(self, ms):
        self.t = (self.t + ms) & (2**30 - 1)

def ticks_diff(a, b):
    return ((a - b + 2**29) & (2**30 - 1)) - 2**29
"""


def test_a_board_clock_before_2025_is_not_trusted_and_ntp_time_follows_the_ticks(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, CLOCK + """
ticks = Ticks(2**30 - 5000)               # 5 s before the counter wraps
answers = [1800000000]
c = Clock(7, "clock", now=lambda: EPOCH_2000 + 12, ticks=ticks, ticks_diff=ticks_diff, ntp=lambda: answers[0])
before = c.time()
due_before = c.sync_due(3600)
ticks.advance(2500)
taken = c.uptime_ms()                     # a reading taken before the time is known
ticks.advance(1500)
c.sync()
ticks.advance(10000)                      # across the wrap
after = c.time()
due_after = [c.sync_due(3600), c.sync_due(10)]
ticks.advance(2**29 - 1)                  # more than a wrap's worth in steps no longer than half of one
c.uptime_ms()
ticks.advance(2**29 - 1)
later = c.time()
reboot = Clock(8, "clock", now=lambda: EPOCH_2000 + 3)
print(json.dumps({"before": before, "due_before": due_before, "taken": c.time_of(7, taken), "after": after,
                  "due_after": due_after, "later": later, "old_boot": reboot.time_of(7, taken),
                  "never_synced": reboot.time_of(6, 100), "this_boot": reboot.time_of(8, 0),
                  "anchors_file": open("clock").read()}))
""")
    assert result == {
        "before": None, "due_before": True,
        "taken": 1800000000 - 1,                   # 1.5 s before the answer, whole seconds
        "after": 1800000000 + 10,
        "due_after": [False, True],
        "later": 1800000000 + 10 + (2**30 - 2 + 500) // 1000,
        "old_boot": 1800000000 - 1,                # the reading of boot 7 is placed after a reboot too
        "never_synced": None, "this_boot": None,
        "anchors_file": "7 4000 1800000000\n",
    }


def test_a_trusted_clock_is_used_as_it_is_and_ntp_not_asked(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, CLOCK + """
import time
asked = []
c = Clock(1, None, ntp=lambda: asked.append(1))
print(json.dumps({"drift": abs(c.time() - time.time()), "due": c.sync_due(0), "asked": len(asked),
                  "board_time": abs(board_time() - time.time())}))
""")
    assert result["due"] is False and result["asked"] == 0
    assert result["drift"] <= 1 and result["board_time"] <= 1


@pytest.mark.parametrize("time_server", [{"unix": NOW}, {"unix": 2**32 - NTP_TO_UNIX + 1000}], indirect=True,
                         ids=["2027", "after-the-2036-wrap"])
def test_sntp_asks_a_real_udp_server(micropython, tmp_path, time_server):
    result = run_micropython(micropython, tmp_path, CLOCK + f"""
print(json.dumps(sntp("127.0.0.1", {time_server.port}, 2)))
""")
    assert result == time_server.unix


@pytest.mark.parametrize("time_server", [{"refuse": 1}], indirect=True)
def test_sntp_failures_are_one_sentence(micropython, tmp_path, time_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes the request and never answers
        silent_port = silent.getsockname()[1]
        result = run_micropython(micropython, tmp_path, CLOCK + f"""
out = []
for port in ({time_server.port}, {silent_port}):
    try:
        sntp("127.0.0.1", port, 0.3)
    except OSError as e:
        out.append(str(e))
print(json.dumps(out))
""")
    assert result[0] == f"the time server 127.0.0.1:{time_server.port} gave no usable time"
    assert result[1].startswith(f"no answer from the time server 127.0.0.1:{silent_port}: ")


# The firmware under MicroPython with a board clock stuck in 2000, as on an ESP32 at power on.
RUN_ON_A_BOARD_CLOCK = """
import sys
from firmware import app
from firmware.buffer import Files
from firmware.clock import EPOCH_2000
config = app.load_config(sys.argv[1])
clock = app.make_clock(config, config["state_dir"], Files(), now=lambda: EPOCH_2000 + 42)
left = app.run(config, clock=clock)
print("left %d" % left)
"""


def run_board(micropython, tmp_path, config_path):
    script = tmp_path / "board_clock.py"
    script.write_text(RUN_ON_A_BOARD_CLOCK)
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(script), str(config_path)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


with_passwords = pytest.mark.parametrize("fresh_mosquitto", [{"passwords": USERS}], indirect=True,
                                         ids=["passwords"])


@with_passwords
@pytest.mark.parametrize("time_server", [{"refuse": 2}], indirect=True)
def test_readings_taken_before_the_time_is_known_are_sent_with_it(micropython, fresh_mosquitto, time_server,
                                                                   tmp_path):
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=6, interval=0.1, drain_seconds=5,
                          ntp_host="127.0.0.1", ntp_port=time_server.port)
    out = run_board(micropython, tmp_path, config)
    readings = [r for recs, _ in sub.wait_for_records(6) for r in recs]
    sub.stop()
    # The time server refused twice, so the first readings waited; then all went, with the server's time.
    assert out.splitlines() == [
        f"sensing: cannot get the time (the time server 127.0.0.1:{time_server.port} gave no usable time); "
        "readings wait for it, retrying in 0.1 s",
        f"sensing: cannot get the time (the time server 127.0.0.1:{time_server.port} gave no usable time); "
        "readings wait for it, retrying in 0.2 s",
        "left 0",
    ]
    assert [r["seq"] for r in readings] == list(range(6))
    assert all(NOW - 2 <= r["t"] <= NOW + 2 for r in readings), [r["t"] for r in readings]
    # What went on the wire is plain records: no boot id, no uptime, no null time.
    up = [p for t, p, _ in sub.messages if t.endswith("/up")]
    assert [p for p in up if b"null" in p or b'"boot"' in p or b'"ms"' in p] == []


@with_passwords
def test_readings_of_a_boot_that_never_got_the_time_are_not_sent_and_are_counted(micropython, fresh_mosquitto,
                                                                                  tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        config = write_config(tmp_path, fresh_mosquitto.port, cycles=3, timeout=0.2,
                              ntp_host="127.0.0.1", ntp_port=silent.getsockname()[1])
        first = run_board(micropython, tmp_path, config)
    assert first.splitlines()[-1] == "left 3"  # online, but no time: nothing sent
    server = TimeServer()
    try:
        sub = Subscriber(fresh_mosquitto)
        config = write_config(tmp_path, fresh_mosquitto.port, cycles=2, ntp_host="127.0.0.1", ntp_port=server.port)
        second = run_board(micropython, tmp_path, config)
        readings = [r for recs, _ in sub.wait_for_records(2) for r in recs]
    finally:
        server.close()
    sub.stop()
    assert second.splitlines() == [
        "sensing: 3 reading(s) not sent: taken before a restart, and the time never known",
        "left 0",
    ]
    # The first start reserved seqs 0-63 and stopped cleanly at 3: the second carries on from there.
    assert [r["seq"] for r in readings] == [3, 4]
    assert all(NOW - 2 <= r["t"] <= NOW + 2 for r in readings)
    status = [(p, retain) for t, p, retain in sub.messages if t.endswith("/status")]
    # Retained from the first start; then online, and once the three were found to have no time, the count.
    offline = b'{"state": "offline"}'
    assert status == [(offline, True), (online(), False), (online(untimed=3), False), (offline, False)]


# Setting the board's real-time clock when NTP answers. A fake machine.RTC records the tuples it is set to,
# and the fake board's time.time() follows it, counted from the board's epoch: 2000 (ESP32) or 1970 (rp2).
BOARD_RTC = CLOCK + """
from firmware.clock import unix_of
from firmware.ntp import civil, set_rtc

def days_in(year):
    return 366 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 365

class Board:
    def __init__(self, epoch, start):
        self.epoch = epoch          # the year time.time() counts from
        self.rtc = start            # what the RTC holds: a calendar date, the same on every port
        self.set = []
    def datetime(self, t=None):
        if t is None:
            return self.rtc
        self.set.append(list(t))
        self.rtc = t
    def seconds(self):
        # time.time() on this board: seconds from its epoch to what the RTC holds, day by day
        t = self.rtc
        days = sum(days_in(y) for y in range(self.epoch, t[0]))
        month = [31, 29 if days_in(t[0]) == 366 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30]
        days += sum(month[:t[1] - 1]) + t[2] - 1
        return days * 86400 + t[4] * 3600 + t[5] * 60 + t[6]
    def gmtime(self, s):
        return (self.epoch + s // 31536000,)
"""

ANSWERS = [1800000000,                  # 2027-01-15, a Friday
           1835395199,                  # 2028-02-28 23:59:59, the eve of a leap day
           1835395200,                  # 2028-02-29
           1861919999,                  # 2028-12-31 23:59:59
           2**32 - NTP_TO_UNIX + 1000]  # just after NTP's 2036 wrap


def rtc_tuple(unix):
    d = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return [d.year, d.month, d.day, d.weekday(), d.hour, d.minute, d.second, 0]


@pytest.mark.parametrize("epoch", [2000, 1970], ids=["esp32-epoch-2000", "rp2-epoch-1970"])
def test_an_ntp_answer_sets_the_board_rtc_to_the_exact_date_on_either_epoch(micropython, tmp_path, epoch):
    result = run_micropython(micropython, tmp_path, BOARD_RTC + f"""
out = []
for answer in {ANSWERS}:
    start = (2000, 1, 1, 5, 0, 0, 0, 0) if {epoch} == 2000 else (2021, 1, 1, 4, 0, 0, 0, 0)  # at power on
    board = Board({epoch}, start)
    now = lambda: board_time(board.seconds, board.gmtime)
    before = now()
    c = Clock(1, None, now=now, ntp=lambda: answer, rtc=board)
    due = c.sync_due(3600)
    c.sync()
    # A soft reset: a new boot, no NTP at all, the RTC as it was left
    again = Clock(2, None, now=now, rtc=board)
    out.append({{"before": before, "due": due, "set": board.set, "time_time": board.seconds(),
                 "board_time": now(), "after_reset": again.time(), "rtc_read": Clock(3, None, rtc=board).time()}})
print(json.dumps(out))
""")
    for answer, r in zip(ANSWERS, result, strict=True):
        assert r["set"] == [rtc_tuple(answer)], answer
        # time.time() on the board follows the RTC, from the board's own epoch; board_time() undoes it
        assert r["time_time"] == answer - (EPOCH_2000 if epoch == 2000 else 0)
        assert r["board_time"] == r["after_reset"] == r["rtc_read"] == answer
        assert r["due"] is True and r["before"] < VALID_AFTER


def test_civil_dates_and_weekdays_match_the_calendar(micropython, tmp_path):
    moments = list(range(0, 4102444800, 86400 * 37 + 3607)) + [0, 951782400, 951868799, 4102444799]
    result = run_micropython(micropython, tmp_path, CLOCK + f"""
from firmware.clock import unix_of
from firmware.ntp import civil
out = []
for u in {moments}:
    t = civil(u)
    out.append(list(t) + [unix_of(t[0], t[1], t[2], t[4], t[5], t[6])])
print(json.dumps(out))
""")
    for u, r in zip(moments, result, strict=True):
        assert r[:7] == rtc_tuple(u)[:7], u
        assert r[7] == u


def test_a_clock_right_from_an_earlier_sync_asks_ntp_again_only_after_ntp_every(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, CLOCK + """
rtc = [1800000000]
asked = []
def ntp():
    asked.append(1)
    return rtc[0]
first = Clock(1, "clock", now=lambda: rtc[0], ntp=ntp)
never = first.sync_due(3600)              # right from the start, never synced: a laptop
rtc[0] = EPOCH_2000 + 5                   # a power on: the clock is wrong
first = Clock(2, "clock", now=lambda: rtc[0], ntp=ntp)
wrong = first.sync_due(3600)
rtc[0] = 1800000000
first.sync()
rtc[0] += 600                             # a reboot 10 minutes later
soon = Clock(3, "clock", now=lambda: rtc[0], ntp=ntp).sync_due(3600)
rtc[0] += 3600                            # an hour later
late = Clock(4, "clock", now=lambda: rtc[0], ntp=ntp).sync_due(3600)
rtc[0] = 1800000000 - 60                  # behind the last answer: wrong
behind = Clock(5, "clock", now=lambda: rtc[0], ntp=ntp).sync_due(3600)
print(json.dumps([never, wrong, soon, late, behind, len(asked)]))
""")
    assert result == [False, True, False, True, True, 1]


@with_passwords
def test_after_a_reset_a_board_whose_rtc_was_set_times_its_readings_without_ntp(micropython, fresh_mosquitto,
                                                                                 tmp_path):
    from tests.firmware.test_app_sensors import run_kit
    from tests.firmware.test_app_sensors import write_config as write_kit_config
    server = TimeServer()
    sub = Subscriber(fresh_mosquitto)
    try:
        config = write_kit_config(tmp_path, fresh_mosquitto.port, cycles=2, interval=0.05, drain_seconds=5,
                                  ntp_host="127.0.0.1", ntp_port=server.port)
        # An ESP32 at power on: its RTC reads 2000-01-01 (a Saturday).
        first = run_kit(micropython, config, kit="damp", rtc=[2000, 1, 1, 5, 0, 0, 0, 0])
        assert server.asked == 1
    finally:
        server.close()
    assert first["rtc_set"] == [rtc_tuple(NOW)] == [[2027, 1, 15, 4, 8, 0, 0, 0]]  # a Friday, in UTC
    assert first["left"] == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # a time server that would never answer, and notes being asked
        silent.setblocking(False)
        config = write_kit_config(tmp_path, fresh_mosquitto.port, cycles=2, interval=0.05, drain_seconds=5,
                                  ntp_host="127.0.0.1", ntp_port=silent.getsockname()[1])
        # A soft reset 30 s later: the RTC kept running.
        second = run_kit(micropython, config, kit="damp", rtc=rtc_tuple(NOW + 30))
        with pytest.raises(BlockingIOError):
            silent.recv(48)
    readings = [r for recs, _ in sub.wait_for_records(4) for r in recs]
    sub.stop()
    assert second["log"] == [] and second["rtc_set"] == [] and second["left"] == 0
    assert [r["seq"] for r in readings] == [0, 1, 2, 3]
    assert all(NOW - 2 <= r["t"] <= NOW + 2 for r in readings[:2]), readings
    assert [r["t"] for r in readings[-2:]] == [NOW + 30, NOW + 30], readings
    # Timed from the start: no reading of the second start waited for the time.
    up = [p for t, p, _ in sub.messages if t.endswith("/up")]
    assert [p for p in up if b"null" in p or b'"boot"' in p] == []
