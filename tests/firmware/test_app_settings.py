"""Settings over the air, under the real MicroPython unix port: a retained message on the config topic of a
real Mosquitto, and a LoRaWAN downlink from an emulated modem, each checked, applied and kept in the config
file, or refused with a status message; and a device whose config is invalid waits for the fix."""

import json
import os
import subprocess
import time

import paho.mqtt.client as paho

from tests.firmware.support import REPO
from tests.firmware.test_app import DEVICE, USERS, Subscriber, online, with_passwords
from tests.firmware.test_app_sensors import RUNNER, led_gaps, run_kit, write_config


def retain_config(broker, payload):
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="hub-config")
    client.username_pw_set("hub", USERS["hub"])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(f"sensing/v1/{DEVICE}/config", payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@with_passwords
def test_settings_on_the_config_topic_are_applied_and_kept(micropython, fresh_mosquitto, tmp_path):
    retain_config(fresh_mosquitto, json.dumps({"interval": 120, "led": False}))
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=3)
    before = json.loads(config.read_text())
    result = run_kit(micropython, config, kit="damp")
    assert result["log"] == ["sensing: settings changed: interval 120, led false"]
    assert json.loads(config.read_text()) == {**before, "interval": 120, "led": False}
    # The LED went dark when the setting came, and the second wait was 120 s of the board's time.
    levels = [level for _, level in result["led"]]
    last_on = len(levels) - 1 - levels[::-1].index(1)
    assert levels[last_on + 1:] == [0] and result["led"][-1][0] < 60000  # dark from the first cycle on
    assert result["feeds"][-1] > 60000 + 120000


@with_passwords
def test_settings_that_are_not_allowed_are_refused_in_the_status(micropython, fresh_mosquitto, tmp_path):
    retain_config(fresh_mosquitto, json.dumps({"broker_host": "evil.example"}))
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=1)
    before = config.read_text()
    result = run_kit(micropython, config, kit="damp")
    time.sleep(0.2)
    sub.stop()
    why = "config refused: broker_host can't be changed over the air (only interval, batch, led, sleep, lora_confirmed)"
    assert result["log"] == ["sensing: " + why]
    assert config.read_text() == before
    assert [p for t, p, _ in sub.messages if t.endswith("/status")] == [online(), online(message=why),
                                                                         b'{"state": "offline"}']


@with_passwords
def test_an_invalid_config_waits_in_safe_mode_until_the_hub_fixes_it(micropython, fresh_mosquitto, tmp_path):
    sub = Subscriber(fresh_mosquitto)
    config = write_config(tmp_path, fresh_mosquitto.port, cycles=0, interval=2)  # too short to run for ever
    env = dict(os.environ, MICROPYPATH=str(REPO))
    proc = subprocess.Popen([micropython, str(RUNNER), str(config), json.dumps({"kit": "damp", "safe_mode": 30,
                                                                                  "real_sleep": 0.01})],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    invalid = {"dropped": 0, "faults": [], "message": "config invalid: interval must be at least 5 seconds",
               "state": "config_invalid", "untimed": 0}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and invalid not in [json.loads(p) for t, p, _ in sub.messages]:
        time.sleep(0.05)
    retain_config(fresh_mosquitto, json.dumps({"interval": 600}))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    sub.stop()
    assert result["fixed"] is True and result["log"] == [
        "sensing: config invalid: interval must be at least 5 seconds",
        "sensing: the settings from the hub fix the config; starting"]
    assert json.loads(config.read_text())["interval"] == 600
    # Three short blinks and a pause while it waited.
    assert led_gaps(result["led"])[:5] == [(1, 200), (0, 200), (1, 200), (0, 200), (1, 200)]
