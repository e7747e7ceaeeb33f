"""The main loop sending over LoRaWAN, under the real MicroPython unix port, through the real modem drivers to
the emulated Wio-E5 and RAK3172 (tests/firmware/modems): one compact reading per uplink, each leaving the
buffer only once the modem says it went; failures keep the buffer and back off; settings downlinks; the
device's status on its own port, when it changes and after a long while, never in a reading's place."""

import json

import pytest

from firmware import codec
from tests.firmware.test_app_sensors import DAMP, run_kit, write_config

LORA = {"transport": "lorawan", "lora_dev_eui": "2CF7F1C0420005B1",
        "lora_app_key": "2B7E151628AED2A6ABF7158809CF4F3C", "backoff_initial": 0, "backoff_max": 0}


def compact(*seqs, values=DAMP, confirmed=False):
    return [[10, codec.encode_compact(seq, values).hex(), confirmed] for seq in seqs]


def status(boot=1, buffered=0, faults=()):
    """The status uplink (port 12) the device sends, unconfirmed."""
    return [[12, codec.encode_status(list(faults), boot, buffered).hex(), False]]


def lora_config(tmp_path, **overrides):
    return write_config(tmp_path, 1, **{**LORA, **overrides})


@pytest.mark.parametrize("modem", ["wio_e5", "rak3172"])
def test_each_reading_goes_in_its_own_compact_uplink(micropython, tmp_path, modem):
    result = run_kit(micropython, lora_config(tmp_path, lora_modem=modem), kit="damp", modem=modem)
    assert result["log"] == [] and result["left"] == 0
    # The status goes once the first reading has: all well, on the first start, nothing waiting.
    assert result["uplinks"] == compact(0) + status() + compact(1, 2)


def test_a_failed_join_keeps_the_readings_until_the_network_answers(micropython, tmp_path):
    result = run_kit(micropython, lora_config(tmp_path), kit="damp", modem="wio_e5",
                     modem_script={"join_failures": 1})
    assert result["log"] == [
        "sensing: cannot send to the LoRaWAN network (the Wio-E5 sent a join request but no join accept came "
        "back: check the gateway is in range and the keys match the network's); 1 reading(s) kept, retrying in "
        "0 s"]
    # Joined at the second reading: both readings go, then the status.
    assert result["uplinks"] == compact(0, 1) + status() + compact(2) and result["left"] == 0
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
    readings = [u for u in result["uplinks"] if u[0] == 10]
    assert {u[1] for u in readings} == {codec.encode_compact(0, DAMP).hex()}
    assert [u for u in result["uplinks"] if u[0] != 10] == status(buffered=1)  # after the first reading's try


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
    # The second downlink came back after the status uplink: the status's downlinks are read too.
    assert result["uplinks"] == compact(0) + status() + compact(1, 2)


def test_a_fault_goes_in_a_status_uplink_no_sooner_than_15_minutes_after_the_last(micropython, tmp_path):
    # A reading a minute; the room sensor is unplugged from the second reading on.
    result = run_kit(micropython, lora_config(tmp_path, cycles=18), kit="damp", modem="wio_e5",
                     chip_faults={"1": {"sht4x": "absent"}})
    wall = {"surface_temperature": 14.0}
    assert result["uplinks"] == (compact(0) + status() + compact(*range(1, 16), values=wall)
                                 + status(faults=[{"sensor": "sht4x@0x44", "fault": "absent"}])
                                 + compact(16, 17, values=wall))


def test_an_unchanged_status_goes_again_after_12_hours(micropython, tmp_path):
    result = run_kit(micropython, lora_config(tmp_path, cycles=8, interval=7200, led=False), kit="damp",
                     modem="wio_e5")
    assert result["uplinks"] == compact(0) + status() + compact(*range(1, 7)) + status() + compact(7)


def test_a_restart_does_not_send_the_same_status_again(micropython, tmp_path):
    first = run_kit(micropython, lora_config(tmp_path, cycles=1), kit="damp", modem="wio_e5")
    again = run_kit(micropython, lora_config(tmp_path, cycles=2), kit="damp", modem="wio_e5")
    assert first["uplinks"] == compact(0) + status()
    assert again["uplinks"] == compact(1, 2)


def test_unacknowledged_readings_wait_and_the_status_says_how_many(micropython, tmp_path):
    # Confirmed uplinks the network never acknowledges: each reading is kept and tried first at every
    # cycle; the status, unconfirmed, goes after the first try and tells the hub a reading waits.
    result = run_kit(micropython, lora_config(tmp_path, lora_confirmed=True), kit="damp", modem="wio_e5",
                     modem_script={"ack": False})
    assert result["left"] == 3
    assert result["uplinks"] == compact(0, confirmed=True) + status(buffered=1) + compact(0, 0, confirmed=True)
