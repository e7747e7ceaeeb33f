"""The LoRaWAN mappers on their own: network-server JSON in, Uplink and Message out. No database, no network."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware import codec
from hub.ingest import lorawan
from hub.ingest.lorawan import Uplink, UplinkError
from hub.models import Transport

SAMPLES = Path("/work/shared/samples")
TTN = (SAMPLES / "ttn-v3-uplink.json").read_bytes()
CHIRPSTACK = (SAMPLES / "chirpstack-v4-uplink.json").read_bytes()
CAYENNE = bytes.fromhex("016700d902687f03732764")  # the samples' payload: 21.7 °C, 63.5 %, 1008.4 hPa
DEFAULT_MAP = {"*": {1: "temperature", 2: "humidity", 3: "pressure"}}
NOW = datetime(2026, 11, 20, 7, 50, tzinfo=UTC)
FULL_AIR = {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7, "humidity": 63.5,
            "pressure": 1008.4, "battery_voltage": 3.71}


def edited(sample: bytes, change) -> bytes:
    doc = json.loads(sample)
    change(doc)
    return json.dumps(doc).encode()


def test_ttn_sample_reads_as_an_uplink():
    assert lorawan.ttn_uplink(TTN) == Uplink(
        "TTN", "damp-knowle-07", "70B3D57ED005A1C3", 2, 311, CAYENNE,
        datetime(2026, 11, 20, 7, 41, 12, 140000, tzinfo=UTC),
    )


def test_chirpstack_sample_reads_as_an_uplink():
    assert lorawan.chirpstack_uplink(CHIRPSTACK) == Uplink(
        "ChirpStack", "air-easton-02", "2cf7f1c0420005b1", 2, 1022, CAYENNE,
        datetime(2026, 11, 20, 7, 45, 3, 221000, tzinfo=UTC),
    )


def test_ttn_omits_a_zero_frame_counter_and_the_network_time_falls_back_to_the_application_servers():
    body = edited(TTN, lambda d: (d["uplink_message"].pop("f_cnt"), d["uplink_message"].pop("received_at")))
    uplink = lorawan.ttn_uplink(body)
    assert uplink.f_cnt == 0
    assert uplink.received_at == datetime(2026, 11, 20, 7, 41, 12, 345678, tzinfo=UTC)  # nanoseconds cut


@pytest.mark.parametrize(("body", "reason"), [
    (b"\x00not json", "the body is not JSON: set the TTN webhook integration's format to JSON"),
    (b"[1, 2]", "the body must be a JSON object, a TTN webhook uplink message"),
    (edited(TTN, lambda d: d.pop("end_device_ids")),
     "the body has no end_device_ids.device_id: is the webhook sending TTN v3 uplink messages?"),
    (edited(TTN, lambda d: d.pop("uplink_message")),
     "the body has no uplink_message: in the TTN webhook, enable only 'Uplink message' for this address"),
    (edited(TTN, lambda d: d["uplink_message"].update(frm_payload="not base64!")),
     "'uplink_message.frm_payload' is not valid base64"),
    (edited(TTN, lambda d: d["uplink_message"].update(f_port="2")),
     "'uplink_message.f_port' must be a LoRaWAN port number (0 to 255)"),
    (edited(TTN, lambda d: d["uplink_message"].update(received_at="yesterday")),
     "'uplink_message.received_at' is not an RFC 3339 time: 'yesterday'"),
])
def test_a_ttn_body_that_cannot_be_used_says_what_to_fix(body, reason):
    with pytest.raises(UplinkError) as caught:
        lorawan.ttn_uplink(body)
    assert caught.value.reason == reason


def test_a_chirpstack_body_without_a_device_name_says_what_to_fix():
    with pytest.raises(UplinkError) as caught:
        lorawan.chirpstack_uplink(edited(CHIRPSTACK, lambda d: d["deviceInfo"].pop("deviceName")))
    assert caught.value.reason == ("the body has no deviceInfo.deviceName: is the integration sending ChirpStack "
                                   "v4 uplink events?")


@pytest.mark.parametrize(("low16", "last", "seq"), [
    (17, None, 17),  # nothing stored yet: the seq as sent
    (17, 16, 17),
    (3, 65530, 65539),  # the 16-bit seq wrapped: the device went on counting
    (65530, 65539, 65530),  # a resent reading from before the wrap keeps its seq
    (70000 % 65536, 70000, 70000),  # the same reading again
    (69000 % 65536, 70000, 69000),
    ((70000 + 49151) % 65536, 70000, 119151),  # far ahead: up to 49151 readings the hub never saw
    ((70000 - 16385) % 65536, 70000, 119151),  # ... which is why a resend may be at most 16384 behind
    (65000, 100, 65000),  # near the start there is no "behind": never a negative seq
])
def test_the_compact_seq_is_widened_against_the_highest_seq_stored(low16, last, seq):
    assert lorawan.widen_seq(low16, last) == seq


def uplink(port: int, payload: bytes, device: str = "air-7kq2m9xp") -> Uplink:
    return Uplink("TTN", device, None, port, 5, payload, datetime(2026, 11, 20, 7, 41, 12, 140000, tzinfo=UTC))


def test_the_compact_form_on_its_port_becomes_the_json_form_with_the_widened_seq():
    decoded = lorawan.message(uplink(10, codec.encode_compact(65539, FULL_AIR)), compact_port=10,
                              channels=DEFAULT_MAP, last_seq=65530, received_at=NOW)
    assert decoded.seq == 65539 and decoded.skipped == []
    assert decoded.message.transport == Transport.lorawan
    assert decoded.message.device == "air-7kq2m9xp"
    assert decoded.message.received_at == NOW
    assert json.loads(decoded.message.payload) == {"seq": 65539, "t": 1795160472, "v": FULL_AIR}


def test_cayenne_on_another_port_uses_the_default_map_and_the_network_time_in_ms_as_seq():
    decoded = lorawan.message(uplink(2, CAYENNE), compact_port=10, channels=DEFAULT_MAP, last_seq=None,
                              received_at=NOW)
    assert decoded.seq == 1795160472140
    assert decoded.seq > lorawan.TIME_SEQ_FLOOR
    assert json.loads(decoded.message.payload) == {
        "seq": 1795160472140, "t": 1795160472, "v": {"temperature": 21.7, "humidity": 63.5, "pressure": 1008.4}}


def test_a_device_map_replaces_the_default_and_unmapped_channels_are_reported():
    channels = {**DEFAULT_MAP, "air-7kq2m9xp": {1: "surface_temperature"}}
    decoded = lorawan.message(uplink(2, CAYENNE), compact_port=10, channels=channels, last_seq=None,
                              received_at=NOW)
    assert json.loads(decoded.message.payload)["v"] == {"surface_temperature": 21.7}
    assert decoded.skipped == ["channel 2 (humidity) is not in the channel map",
                               "channel 3 (barometer) is not in the channel map"]


@pytest.mark.parametrize(("port", "payload", "channels", "reason"), [
    (10, bytes.fromhex("0200"), DEFAULT_MAP, "port 10: the compact payload is truncated: 2 bytes, a header alone is 5"),
    (10, bytes.fromhex("0900110001"), DEFAULT_MAP,
     "port 10: unknown compact payload version 9 (this codec reads version 1)"),
    (2, bytes.fromhex("0167"), DEFAULT_MAP, "port 2: the CayenneLPP payload is truncated in channel 1 (temperature)"),
    (2, CAYENNE, {}, "port 2 carries CayenneLPP, and there is no channel map for 'air-7kq2m9xp' nor a default one: "
                     "set SENSING_LORAWAN_CAYENNE_CHANNELS"),
    (2, bytes.fromhex("096700d9"), DEFAULT_MAP,
     "port 2: no value to store (channel 9 (temperature) is not in the channel map)"),
])
def test_a_payload_that_cannot_be_read_says_why(port, payload, channels, reason):
    with pytest.raises(UplinkError) as caught:
        lorawan.message(uplink(port, payload), compact_port=10, channels=channels, last_seq=None, received_at=NOW)
    assert (caught.value.reason, caught.value.device) == (reason, "air-7kq2m9xp")


def test_a_rejection_shows_the_uplinks_bytes_in_hex():
    assert lorawan.payload_excerpt(uplink(10, b"\x01\x00")) == b"f_port 10 f_cnt 5: 01 00"


def test_the_samples_payload_is_the_documented_cayenne():
    assert base64.b64decode(json.loads(TTN)["uplink_message"]["frm_payload"]) == CAYENNE
