"""Time on the device, under the real MicroPython unix port: an injected board clock and ticks, a real UDP
time server of the test's own, and the firmware publishing to a real Mosquitto."""

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
from firmware.clock import Clock, board_time, sntp, EPOCH_2000

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
