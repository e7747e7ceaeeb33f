"""The LoRaWAN modem drivers under the real MicroPython unix port, against emulated Wio-E5 and RAK3172 modems.

tests/firmware/lorawan_runner.py runs every scenario in one MicroPython process (fake UART, virtual clock, the
emulators in tests/firmware/modems/) and prints what the modem heard, what went on the air, how long it took
in virtual milliseconds, and what the driver returned or raised.
"""

import json
import os
import subprocess

import pytest

from firmware import codec
from tests.firmware.support import REPO

RUNNER = REPO / "tests" / "firmware" / "lorawan_runner.py"
KEYS = ['AT+ID=DevEui,"2CF7F1C0420005B1"', 'AT+ID=AppEui,"0000000000000000"',
        'AT+KEY=APPKEY,"2B7E151628AED2A6ABF7158809CF4F3C"']
RAK_KEYS = ["AT+DEVEUI=2CF7F1C0420005B1", "AT+APPEUI=0000000000000000", "AT+APPKEY=2B7E151628AED2A6ABF7158809CF4F3C"]
FULL_AIR_HEX = "010011087f01ec0cd02be04c89a5ff758b98"  # docs/firmware.md: seq 17, the full air reading
NOT_ANSWERING = "did not answer {} within {} s: check its wiring, power and baud rate"
NO_ACCEPT = "sent a join request but no join accept came back{}: check the gateway is in range and the keys " \
            "match the network's"
NO_ACK = "the network did not acknowledge the confirmed uplink: it may not have arrived, so keep the reading " \
         "and send it again"


@pytest.fixture(scope="module")
def runs(micropython):
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(RUNNER)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_the_uplink_is_the_codecs_compact_form():
    assert codec.encode_compact(17, {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7,
                                     "humidity": 63.5, "pressure": 1008.4,
                                     "battery_voltage": 3.71}).hex() == FULL_AIR_HEX


def test_wio_e5_configures_for_otaa_and_joins(runs):
    assert runs["wio_join"] == {
        "commands": ["AT", "AT+MODE=LWOTAA", "AT+DR=EU868", *KEYS, "AT+ADR=ON", "AT+DR=5", "AT+JOIN"],
        "uplinks": [], "ms": 6000, "joined": True, "value": None,
    }


def test_rak3172_configures_for_otaa_and_joins(runs):
    assert runs["rak_join"] == {
        "commands": ["AT", "AT+NWM=?", "AT+NJM=1", "AT+BAND=4", *RAK_KEYS, "AT+ADR=1", "AT+DR=5", "AT+CFM=0",
                     "AT+JOIN=1:0:10:0"],
        "uplinks": [], "ms": 6000, "joined": True, "value": None,
    }


def test_rak3172_left_in_p2p_mode_is_switched_to_lorawan_and_waits_for_its_restart(runs):
    result = runs["rak_from_p2p"]
    assert result["commands"][:4] == ["AT", "AT+NWM=?", "AT+NWM=1", "AT"]
    assert result["ms"] == 500 and "value" in result


def test_wio_e5_sends_a_full_air_reading_on_the_compact_port(runs):
    assert runs["wio_send"] == {
        "commands": ["AT+PORT=10", f'AT+MSGHEX="{FULL_AIR_HEX.upper()}"'],
        "uplinks": [[10, FULL_AIR_HEX, False]], "ms": 2000, "joined": True, "value": None,
    }


def test_rak3172_sends_a_full_air_reading_on_the_compact_port(runs):
    # 2 s to the send event, then the 0.3 s it waits in case a downlink is reported after it
    assert runs["rak_send"] == {
        "commands": [f"AT+SEND=10:{FULL_AIR_HEX.upper()}"],
        "uplinks": [[10, FULL_AIR_HEX, False]], "ms": 2300, "joined": True, "value": None,
    }


@pytest.mark.parametrize(("scenario", "commands"), [
    ("wio_confirmed", ["AT+PORT=10", 'AT+CMSGHEX="0102"', 'AT+CMSGHEX="0103"']),
    ("rak_confirmed", ["AT+CFM=1", "AT+SEND=10:0102", "AT+SEND=10:0103"]),
])
def test_confirmed_uplinks_set_the_mode_once(runs, scenario, commands):
    assert runs[scenario]["commands"] == commands
    assert runs[scenario]["uplinks"] == [[10, "0102", True], [10, "0103", True]]
    assert runs[scenario]["value"] is None


@pytest.mark.parametrize("scenario", ["wio_downlink", "rak_downlink", "rak_downlink_first"])
def test_a_downlink_comes_back_as_port_and_bytes(runs, scenario):
    assert runs[scenario]["value"] == [3, "012c"]
    assert runs[scenario]["uplinks"] == [[10, "010203", False]]


@pytest.mark.parametrize(("scenario", "command"), [("wio_join_retries", "AT+JOIN"),
                                                   ("rak_join_retries", "AT+JOIN=1:0:10:0")])
def test_a_join_that_fails_twice_succeeds_on_the_third_attempt(runs, scenario, command):
    # three joins of 6 s, with 1 s then 2 s between them
    assert runs[scenario] == {"commands": [command] * 3, "uplinks": [], "ms": 21000, "joined": True, "value": 3}


@pytest.mark.parametrize(("scenario", "name", "detail"), [("wio_join_gives_up", "Wio-E5", ""),
                                                          ("rak_join_gives_up", "RAK3172",
                                                           " (JOIN_FAILED_RX_TIMEOUT)")])
def test_a_join_that_keeps_failing_says_so(runs, scenario, name, detail):
    result = runs[scenario]
    assert (result["error"], result["message"]) == ("join_failed", f"the {name} " + NO_ACCEPT.format(detail))
    assert (len(result["commands"]), result["ms"], result["joined"]) == (2, 13000, False)


@pytest.mark.parametrize(("scenario", "kind", "message"), [
    ("wio_not_joined", "not_joined", "the Wio-E5 has not joined the network: join first"),
    ("rak_not_joined", "not_joined", "the RAK3172 has not joined the network: join first"),
    ("wio_busy", "busy", "the Wio-E5 is busy with an earlier send or join"),
    ("rak_busy", "busy", "the RAK3172 is busy: an earlier join or send is not finished, or the duty-cycle limit "
                         "holds the radio back"),
    ("wio_no_band", "duty_cycle", "the Wio-E5 must wait for the duty-cycle limit before sending (No band in 2345ms)"),
    ("wio_no_free_channel", "duty_cycle",
     "the Wio-E5 must wait for the duty-cycle limit before sending (No free channel)"),
    ("rak_duty_cycle", "duty_cycle", "the RAK3172 must wait for the duty-cycle limit before sending"),
    ("wio_too_long", "too_long", "60 bytes do not fit in one uplink at the current data rate (at most 51)"),
    ("rak_too_long", "refused", "the RAK3172 refused 60 bytes on this port: too long for the current data rate, "
                                "or a port outside 1-223"),
    ("wio_no_ack", "no_ack", NO_ACK),
    ("rak_no_ack", "no_ack", NO_ACK),
    ("wio_timeout", "timeout", "the Wio-E5 " + NOT_ANSWERING.format("AT+MSGHEX", 20)),
    ("rak_timeout", "timeout", "the RAK3172 " + NOT_ANSWERING.format("AT+SEND=10:02", 2)),
    ("wio_join_timeout", "timeout", "the Wio-E5 " + NOT_ANSWERING.format("AT+JOIN", 20)),
    ("rak_join_timeout", "timeout", "the RAK3172 " + NOT_ANSWERING.format("AT+JOIN=1:0:10:0", 2)),
    ("wio_locked_dev_eui", "refused", "the Wio-E5 kept DevEui 2CF7F1C042000999 instead of 2CF7F1C0420005B1: its "
                                      "firmware may lock it, so register the device with the modem's own DevEui"),
])
def test_each_failure_is_one_sentence_of_its_kind(runs, scenario, kind, message):
    assert (runs[scenario]["error"], runs[scenario]["message"]) == (kind, message)


@pytest.mark.parametrize("scenario", ["wio_not_joined", "rak_not_joined"])
def test_not_joined_clears_the_joined_flag_so_the_app_joins_again(runs, scenario):
    assert runs[scenario]["joined"] is False


@pytest.mark.parametrize("scenario", ["wio_busy", "wio_no_band", "wio_too_long", "rak_busy", "rak_duty_cycle",
                                      "rak_too_long", "wio_not_joined", "rak_not_joined"])
def test_a_refused_send_puts_nothing_on_the_air(runs, scenario):
    assert runs[scenario]["uplinks"] == []


@pytest.mark.parametrize("scenario", ["wio_bad_key", "rak_bad_key"])
def test_a_malformed_key_is_refused_before_the_modem_hears_anything(runs, scenario):
    assert runs[scenario]["value_error"] == "the AppKey must be 32 hex digits, not 8"
    assert runs[scenario]["commands"] == []


def test_rak3172_with_echo_on_reads_past_its_own_echo(runs):
    assert runs["rak_echo"]["uplinks"] == [[10, "0a", False]]
    assert runs["rak_echo"]["value"] is None
