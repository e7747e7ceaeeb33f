"""firmware/config.py: each bad setting is refused with one sentence, the same under CPython and the real
MicroPython unix port; changes over the air and the settings downlink; the file is replaced atomically."""

import json
import os
import subprocess

import pytest

from firmware import config
from tests.firmware.support import REPO

BASE = {"device_id": "damp-knowle-07", "secret": "dev_x"}
LORA = {"transport": "lorawan", "lora_dev_eui": "2CF7F1C0420005B1", "lora_app_key": "2B7E151628AED2A6ABF7158809CF4F3C"}
REFUSED = [
    ({"device_id": ""}, "the config has no 'device_id'"),
    ({"device_id": "dev/1"}, "device_id may hold only letters, digits, '-' and '_', not '/'"),
    ({"interval": 2}, "interval must be at least 5 seconds"),
    ({"interval": "60"}, 'interval must be a number, not "60"'),
    ({"interval": 100000}, "interval can't be more than 86400 seconds (a day)"),
    ({"wifi_ssid": "x" * 33}, "wifi_ssid can't be longer than 32 characters"),
    ({"wifi_password": "short"}, "wifi_password must be at least 8 characters (WPA2), or empty for an open network"),
    ({"board": "ESP8266"}, 'unknown board "ESP8266" (use one of ESP32_GENERIC, ESP32_GENERIC_C3, '
                           'ESP32_GENERIC_S3, RPI_PICO2_W, RPI_PICO_W)'),
    ({"transport": "nbiot"}, 'unknown transport "nbiot" (use one of lorawan, mqtt)'),
    ({"uart_sensor": "sps30"}, 'unknown UART sensor "sps30" (use one of pms5003, sds011)'),
    ({"sleep": "hibernate"}, 'unknown sleep mode "hibernate" (use one of none, light, deep)'),
    ({"led": 1}, "led must be true or false, not 1"),
    ({"watchdog_ms": 20000}, "watchdog_ms must be between 1000 and 8388"),
    ({"broker_port": 70000}, "broker_port must be between 1 and 65535"),
    ({"batch_bytes": 100}, "batch_bytes must be between 512 and 65536"),
    ({"intervall": 60}, "unknown setting 'intervall'"),
    ({**LORA, "lora_app_key": "2B7E1516"}, "lora_app_key must be 32 hex digits, not 8"),
    ({**LORA, "lora_dev_eui": "2CF7F1C0420005BZ"}, "lora_dev_eui may hold only hex digits (0-9, A-F), not 'Z'"),
    ({**LORA, "lora_modem": "rn2483"}, 'unknown LoRaWAN modem "rn2483" (use one of rak3172, wio_e5)'),
    ({**LORA, "lora_port": 11}, "lora_port 11 is the settings downlinks' port: choose another"),
    ({**LORA, "lora_region": "EU433"}, 'unknown LoRaWAN region "EU433" (use one of AS923, AU915, EU868, IN865, '
                                       'KR920, US915)'),
]
DOWNLINKS = [
    ("010100012c", {"interval": 300}),
    ("0101000e10" "0200" "0301" "0402" "0501", {"interval": 3600, "batch": 0, "led": True, "sleep": "deep",
                                                      "lora_confirmed": True}),
]
BAD_DOWNLINKS = [
    ("02", "a settings downlink starts with version 1"),
    ("01", "a settings downlink holds no setting"),
    ("01010001", "a settings downlink ends inside interval"),
    ("0109", "a settings downlink names setting 9, which this firmware does not know"),
    ("010302", "led in a settings downlink must be 0 or 1, not 2"),
]

SCRIPT = """
import json, sys
from firmware import config
cases = json.loads(sys.stdin.read())
out = {"refused": [], "downlinks": [], "bad_downlinks": []}
for given, _ in cases["refused"]:
    try:
        config.make_config(given)
        out["refused"].append(None)
    except config.ConfigError as e:
        out["refused"].append(str(e))
for data, _ in cases["downlinks"]:
    out["downlinks"].append(config.decode_downlink(bytes.fromhex(data)))
for data, _ in cases["bad_downlinks"]:
    try:
        config.decode_downlink(bytes.fromhex(data))
        out["bad_downlinks"].append(None)
    except config.ConfigError as e:
        out["bad_downlinks"].append(str(e))
print(json.dumps(out))
"""


def cases():
    return {"refused": [[{**BASE, **given}, why] for given, why in REFUSED], "downlinks": DOWNLINKS,
            "bad_downlinks": BAD_DOWNLINKS}


@pytest.mark.parametrize(("given", "why"), REFUSED, ids=[why[:40] for _, why in REFUSED])
def test_a_bad_setting_is_refused_with_one_sentence(given, why):
    with pytest.raises(config.ConfigError) as e:
        config.make_config({**BASE, **given})
    assert str(e.value) == why


def test_the_same_sentences_under_micropython(micropython):
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, "-c", SCRIPT], input=json.dumps(cases()), env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["refused"] == [why for _, why in REFUSED]
    assert got["downlinks"] == [changes for _, changes in DOWNLINKS]
    assert got["bad_downlinks"] == [why for _, why in BAD_DOWNLINKS]


def test_good_settings_get_the_defaults():
    c = config.make_config({**BASE, **LORA, "interval": 300})
    assert (c["interval"], c["lora_port"], c["lora_region"], c["watchdog_ms"]) == (300, 10, "EU868", 8000)
    # A bounded trial run may read faster than a device left running.
    assert config.make_config({**BASE, "interval": 0.1, "cycles": 3})["interval"] == 0.1


def test_every_board_map_is_a_known_board():
    names = sorted(p.stem for p in (REPO / "firmware" / "boards").glob("*.json"))
    assert names == sorted(config.BOARDS)


@pytest.mark.parametrize(("data", "changes"), DOWNLINKS)
def test_settings_downlink(data, changes):
    assert config.decode_downlink(bytes.fromhex(data)) == changes


def test_a_change_over_the_air_is_checked_whole_and_limited_to_runtime_settings():
    assert config.update(BASE, {"interval": 300}) == {**BASE, "interval": 300}
    with pytest.raises(config.ConfigError) as e:
        config.update(BASE, {"interval": 1})
    assert str(e.value) == "interval must be at least 5 seconds"
    with pytest.raises(config.ConfigError) as e:
        config.update(BASE, {"broker_host": "evil.example"})
    assert str(e.value) == ("broker_host can't be changed over the air "
                            "(only interval, batch, led, sleep, lora_confirmed)")
    with pytest.raises(config.ConfigError) as e:
        config.update(BASE, {"batch": 0})  # the downlink's byte can say 0; the check refuses it
    assert str(e.value) == "batch must be between 1 and 1000"


def test_save_replaces_the_file_through_a_temporary_one(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(BASE))
    config.save(str(path), {**BASE, "interval": 300})
    assert json.loads(path.read_text()) == {**BASE, "interval": 300}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    assert config.load(str(path))["interval"] == 300


def test_the_downlink_format_is_documented_as_the_firmware_reads_it():
    doc = (REPO / "docs" / "lorawan.md").read_text()
    for field, (name, width) in config.DOWNLINK_FIELDS.items():
        assert f"| `{field:02x}` | `{name}` | {width} byte" in doc
    assert "`01 01 00012c 03 00` sets the interval to 300 s and turns the LED off" in doc
    assert config.decode_downlink(bytes.fromhex("010100012c0300")) == {"interval": 300, "led": False}
    assert f"**port {config.CONFIG_PORT}**" in doc


def test_the_runtime_settings_are_documented():
    doc = (REPO / "docs" / "firmware.md").read_text()
    assert [key for key in config.RUNTIME if f"| `{key}` |" not in doc.split("## Settings from the hub")[1]] == []
