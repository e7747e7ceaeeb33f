"""The main loop sending over LoRaWAN, under the real MicroPython unix port, through the real modem drivers to
the emulated Wio-E5 and RAK3172 (tests/firmware/modems): one compact reading per uplink, each leaving the
buffer only once the modem says it went; failures keep the buffer and back off; settings downlinks."""

import json

import pytest

from firmware import codec
from tests.firmware.test_app_sensors import DAMP, run_kit, write_config

LORA = {"transport": "lorawan", "lora_dev_eui": "2CF7F1C0420005B1",
        "lora_app_key": "2B7E151628AED2A6ABF7158809CF4F3C", "backoff_initial": 0, "backoff_max": 0}


def compact(*seqs):
    return [[10, codec.encode_compact(seq, DAMP).hex(), False] for seq in seqs]


def lora_config(tmp_path, **overrides):
    return write_config(tmp_path, 1, **{**LORA, **overrides})


@pytest.mark.parametrize("modem", ["wio_e5", "rak3172"])
def test_each_reading_goes_in_its_own_compact_uplink(micropython, tmp_path, modem):
    result = run_kit(micropython, lora_config(tmp_path, lora_modem=modem), kit="damp", modem=modem)
    assert result["log"] == [] and result["left"] == 0
    assert result["uplinks"] == compact(0, 1, 2)


def test_a_failed_join_keeps_the_readings_until_the_network_answers(micropython, tmp_path):
    result = run_kit(micropython, lora_config(tmp_path), kit="damp", modem="wio_e5",
                     modem_script={"join_failures": 1})
    assert result["log"] == [
        "sensing: cannot send to the LoRaWAN network (the Wio-E5 sent a join request but no join accept came "
        "back: check the gateway is in range and the keys match the network's); 1 reading(s) kept, retrying in "
        "0 s"]
    assert result["uplinks"] == compact(0, 1, 2) and result["left"] == 0
    assert result["modem_commands"].count("AT+JOIN") == 2


def test_a_busy_modem_and_a_missing_ack_keep_the_reading(micropython, tmp_path):
    config = lora_config(tmp_path, lora_modem="rak3172", lora_confirmed=True, cycles=3)
    result = run_kit(micropython, config, kit="damp", modem="rak3172",
                     modem_script={"send_errors": ["AT_BUSY_ERROR"], "ack": False})
    assert result["log"][0].startswith("sensing: cannot send to the LoRaWAN network (the RAK3172 is busy")
    assert result["log"][1].startswith("sensing: cannot send to the LoRaWAN network (the network did not "
                                       "acknowledge the confirmed uplink")
    # Never acknowledged: every reading is still in the buffer, and was tried oldest first.
    assert result["left"] == 3
    assert {u[1] for u in result["uplinks"]} == {codec.encode_compact(0, DAMP).hex()}


def test_a_settings_downlink_is_applied_and_kept(micropython, tmp_path):
    config = lora_config(tmp_path)
    before = json.loads(config.read_text())
    # interval 300 s, LED off; then a downlink this firmware cannot read.
    result = run_kit(micropython, config, kit="damp", modem="wio_e5",
                     downlinks=[[11, "010100012c0300"], [11, "0109"]])
    assert result["log"] == ["sensing: settings changed: interval 300, led false",
                             "sensing: config refused: a settings downlink names setting 9, which this firmware "
                             "does not know"]
    assert json.loads(config.read_text()) == {**before, "interval": 300, "led": False}
    assert result["uplinks"] == compact(0, 1, 2)
