"""The main loop on emulated chips (tests/firmware/app_runner.py: a fake `machine` whose buses host them)
under the real MicroPython unix port, publishing to a real Mosquitto: the exact quantities of a damp kit and
an air kit, a chip that fails for a while, the status that says so, and the watchdog and LED."""

import json
import os
import subprocess
import time

from tests.firmware.support import REPO
from tests.firmware.test_app import DEVICE, SECRET, Subscriber, online, with_passwords

RUNNER = REPO / "tests" / "firmware" / "app_runner.py"
DAMP = {"temperature": 20.0, "humidity": 60.0, "surface_temperature": 14.0, "dew_point": 12.0,
        "surface_humidity": 87.7, "condensation_risk": 2}


def write_config(tmp_path, port, **overrides):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    config = {"device_id": DEVICE, "secret": SECRET, "broker_port": port, "board": "ESP32_GENERIC",
              "interval": 60, "cycles": 3, "state_dir": str(state), "timeout": 5, "ntp_host": "",
              "backoff_initial": 0.1, "backoff_max": 0.4, "backoff_jitter": 0}
    config.update(overrides)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def run_kit(micropython, config_path, timeout=60, **options):
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(RUNNER), str(config_path), json.dumps(options)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def statuses(sub):
    return [json.loads(p) for t, p, _ in sub.messages if t.endswith("/status")]


@with_passwords
def test_a_damp_kit_publishes_room_wall_and_damp_quantities(micropython, fresh_mosquitto, tmp_path):
    sub = Subscriber(fresh_mosquitto)
    result = run_kit(micropython, write_config(tmp_path, fresh_mosquitto.port), kit="damp")
    readings = [r for recs, _ in sub.wait_for_records(3) for r in recs]
    time.sleep(0.2)
    sub.stop()
    assert result["log"] == [] and result["left"] == 0
    assert [r["seq"] for r in readings] == [0, 1, 2]
    assert [r["v"] for r in readings] == [DAMP] * 3
    assert [p for t, p, _ in sub.messages if t.endswith("/status")] == [online(), b'{"state": "offline"}']


@with_passwords
def test_an_air_kit_publishes_particulates_and_weather(micropython, fresh_mosquitto, tmp_path):
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, uart_sensor="sds011", cycles=2)
    result = run_kit(micropython, config, kit="air")
    readings = [r for recs, _ in sub.wait_for_records(2) for r in recs]
    sub.stop()
    assert result["log"] == [] and result["left"] == 0
    assert [r["v"] for r in readings] == [{"pm2_5": 12.3, "pm10": 20.1, "temperature": 21.5, "humidity": 48.0,
                                           "pressure": 1008.4}] * 2


@with_passwords
def test_a_failing_chip_is_skipped_and_reported_and_the_loop_goes_on(micropython, fresh_mosquitto, tmp_path):
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=4)
    # The wall sensor is unplugged for the second reading and back for the fourth; the room sensor's
    # answer is damaged once in the third.
    result = run_kit(micropython, config, kit="damp",
                     chip_faults={"1": {"ds18b20": "absent"}, "2": {"sht4x": "crc"}, "3": {"ds18b20": "back"}})
    readings = [r for recs, _ in sub.wait_for_records(3) for r in recs]
    time.sleep(0.2)
    sub.stop()
    # The third cycle has no sensor that answers: no reading, and no seq spent on it.
    room = {"temperature": 20.0, "humidity": 60.0}
    assert [(r["seq"], r["v"]) for r in readings] == [(0, DAMP), (1, room), (2, DAMP)]
    assert result["left"] == 0
    wall = {"sensor": "ds18b20@288f3c6a01000055", "fault": "absent",
            "message": "ds18b20@288f3c6a01000055 gives no presence pulse on the 1-Wire bus"}
    crc = {"sensor": "sht4x@0x44", "fault": "crc",
           "message": "sht4x@0x44 sent word 0 with a bad CRC (0x1b, expected 0x1a)"}
    assert statuses(sub) == [json.loads(online()), json.loads(online(faults=[wall])),
                             json.loads(online(faults=[crc, wall])), json.loads(online()), {"state": "offline"}]
    # A lasting fault is logged once, when it starts.
    assert result["log"] == ["sensing: sensor fault: " + wall["message"], "sensing: sensor fault: " + crc["message"]]
    # The LED: a blip every 3 s while all is well, two short blinks and a pause while a sensor fails.
    gaps = led_gaps(result["led"])
    assert contains(gaps, [(1, 50), (0, 2950)] * 3) and contains(gaps, [(1, 200), (0, 200), (1, 200), (0, 1400)] * 3)


def led_gaps(events):
    """[(level, how long it was held in ms)] from the LED's [ms, level] changes, repeats of a level merged."""
    merged = []
    for at, level in events:
        if not merged or merged[-1][1] != level:
            merged.append((at, level))
    return [(merged[i][1], merged[i + 1][0] - merged[i][0]) for i in range(len(merged) - 1)]


def contains(seq, part):
    return any(seq[i:i + len(part)] == part for i in range(len(seq) - len(part) + 1))
