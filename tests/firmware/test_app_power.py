"""Running unattended, under the real MicroPython unix port on emulated hardware (app_runner.py): the
watchdog is fed through every cycle and the waits between, and not once the loop stalls; deep sleep keeps
the seq in memory that outlives it; the LED goes dark when asked over the air."""

import json
import os
import subprocess
import time

from tests.firmware.support import REPO
from tests.firmware.test_app import Subscriber, online, with_passwords
from tests.firmware.test_app_sensors import RUNNER, run_kit, write_config


def test_the_watchdog_is_fed_every_cycle_and_through_the_waits(micropython, tmp_path):
    config = write_config(tmp_path, 1, cycles=5, interval=60, timeout=0.5)  # no broker: sends fail, kept
    result = run_kit(micropython, config, kit="damp")
    feeds = result["feeds"]
    # Five readings a minute apart: the watchdog (8 s) is fed at least every 4 s of the board's time.
    assert feeds[-1] - feeds[0] >= 4 * 60000
    assert max(b - a for a, b in zip(feeds, feeds[1:], strict=False)) <= 4000
    assert result["left"] == 5


def test_the_watchdog_is_not_fed_once_the_loop_stalls(micropython, tmp_path):
    config = write_config(tmp_path, 1, cycles=0, interval=5, timeout=0.5)
    env = dict(os.environ, MICROPYPATH=str(REPO))
    # The I2C bus hangs at the 12th transaction: the second reading's. On a board the watchdog restarts it.
    options = {"kit": "damp", "live": True, "stall_after": 11, "real_sleep": 0.001}
    proc = subprocess.Popen([micropython, str(RUNNER), str(config), json.dumps(options)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        while not lines or not lines[-1].startswith("stall"):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(1.0)
    finally:
        proc.kill()
    rest, _ = proc.communicate(timeout=10)
    fed_before = [line for line in lines if line.startswith("feed")]
    assert len(fed_before) >= 3  # the first cycle and its wait were fed
    assert [line for line in rest.splitlines() if line.startswith("feed")] == []


def start(micropython, config, options):
    env = dict(os.environ, MICROPYPATH=str(REPO))
    return subprocess.Popen([micropython, str(RUNNER), str(config), json.dumps(options)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def until_asleep(proc):
    lines = []
    try:
        while True:
            line = proc.stdout.readline()
            assert line, "".join(lines)
            if line.strip() == "asleep":
                return json.loads(lines[-1])
            lines.append(line)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


@with_passwords
def test_deep_sleep_keeps_the_seq_without_a_flash_write(micropython, fresh_mosquitto, tmp_path):
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=3, sleep="deep")
    state = tmp_path / "state"
    first = until_asleep(start(micropython, config, {"kit": "damp", "deepsleep": True}))
    assert first["deepsleep"] == 60000
    # The seq file holds the block reserved (64); the next seq waits in the sleep state instead.
    assert (state / "seq").read_text() == "64\n"
    assert json.loads((state / "sleep.json").read_text()) == {"seq": 1, "limit": 64}
    until_asleep(start(micropython, config, {"kit": "damp", "deepsleep": True}))  # the board wakes: reading 2
    readings = [r for recs, _ in sub.wait_for_records(2) for r in recs]
    time.sleep(0.2)
    sub.stop()
    assert [r["seq"] for r in readings] == [0, 1]
    assert [p for t, p, _ in sub.messages if t.endswith("/status")] == [online(), b'{"state": "asleep"}'] * 2
