"""LoRaWAN ingest over HTTP, on SQLite and PostgreSQL: TTN v3 and ChirpStack v4 uplinks from the shared samples."""

import base64
import json
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firmware import codec
from hub.app import create_app
from hub.settings import Settings
from tests.hub.conftest import OPERATOR_KEY, device_readings, device_rejections

SAMPLES = Path("/work/shared/samples")
TTN_SECRET = "ttn-webhook-secret-long-enough-1"
CHIRPSTACK_SECRET = "chirpstack-secret-long-enough-2"
TTN_AUTH = {"Authorization": f"Bearer {TTN_SECRET}"}
CHIRPSTACK_AUTH = {"Authorization": f"Bearer {CHIRPSTACK_SECRET}"}
FULL_AIR = {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7, "humidity": 63.5,
            "pressure": 1008.4, "battery_voltage": 3.71}
TTN_SEQ = 1795160472140  # uplink_message.received_at 2026-11-20T07:41:12.140Z in ms
CHIRPSTACK_SEQ = 1795160703221  # time 2026-11-20T07:45:03.221Z in ms


@pytest.fixture
def hub_settings(database_url: str, tmp_path) -> Settings:
    return Settings(environment="test", database_url=database_url, data_dir=tmp_path / "data",
                    operator_key=OPERATOR_KEY, lorawan_ttn_secret=TTN_SECRET,
                    lorawan_chirpstack_secret=CHIRPSTACK_SECRET,
                    lorawan_cayenne_channels={"*": {1: "temperature", 2: "humidity", 3: "pressure"}})


def ttn_body(device: str, **uplink) -> dict:
    doc = json.loads((SAMPLES / "ttn-v3-uplink.json").read_text())
    doc["end_device_ids"]["device_id"] = device
    doc["uplink_message"].update(uplink)
    return doc


def chirpstack_body(device: str) -> dict:
    doc = json.loads((SAMPLES / "chirpstack-v4-uplink.json").read_text())
    doc["deviceInfo"]["deviceName"] = device
    return doc


def compact(seq: int, values: dict) -> str:
    return base64.b64encode(codec.encode_compact(seq, values)).decode()


def rejections(client: TestClient, reg) -> list[tuple[str, str, str]]:
    return [(r["transport"], r["reason"], r["excerpt"]) for r in device_rejections(client, reg)]


def test_a_ttn_cayenne_uplink_is_stored_with_the_agreement_and_a_resend_is_a_duplicate(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]

    first = client.post("/api/v1/ingest/ttn", json=ttn_body(device), headers=TTN_AUTH)
    again = client.post("/api/v1/ingest/ttn", json=ttn_body(device), headers=TTN_AUTH)

    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": [], "device": device, "seq": TTN_SEQ,
                            "note": ""}
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": [], "device": device, "seq": TTN_SEQ,
                            "note": ""}
    rows = device_readings(client, reg)
    assert sorted((r["quantity"], r["value"], r["seq"], r["transport"]) for r in rows) == [
        ("humidity", 63.5, TTN_SEQ, "lorawan"), ("pressure", 1008.4, TTN_SEQ, "lorawan"),
        ("temperature", 21.7, TTN_SEQ, "lorawan")]
    assert {r["agreement_id"] for r in rows} == {reg["agreement"]["id"]}
    assert {datetime.fromisoformat(r["measured_at"]).timestamp() for r in rows} == {1795160472}


def test_a_chirpstack_uplink_event_is_stored(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]

    response = client.post("/api/v1/ingest/chirpstack?event=up", json=chirpstack_body(device),
                           headers=CHIRPSTACK_AUTH)

    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": [], "device": device,
                               "seq": CHIRPSTACK_SEQ, "note": ""}
    assert sorted(r["value"] for r in device_readings(client, reg)) == [21.7, 63.5, 1008.4]


def test_compact_readings_keep_the_devices_seq_across_the_16_bit_wrap(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]
    # The device sent seq 65530 over HTTP before it moved to LoRaWAN: the same counter goes on.
    http = client.post("/api/v1/ingest", json={"seq": 65530, "t": 1795160000, "v": {"co2": 500}},
                       headers={"Authorization": f"Bearer {reg['device_secret']}"})
    assert http.json()["accepted"] == 1

    wrapped = ttn_body(device, f_port=10, frm_payload=compact(65539, FULL_AIR))
    old = ttn_body(device, f_port=10, frm_payload=compact(65530, {"co2": 500}))
    after_wrap = client.post("/api/v1/ingest/ttn", json=wrapped, headers=TTN_AUTH)
    resent = client.post("/api/v1/ingest/ttn", json=old, headers=TTN_AUTH)

    assert after_wrap.json() == {"accepted": 8, "duplicates": 0, "rejected": [], "device": device, "seq": 65539,
                                 "note": ""}
    assert resent.json() == {"accepted": 0, "duplicates": 1, "rejected": [], "device": device, "seq": 65530,
                             "note": ""}
    assert sorted({(r["seq"], r["transport"]) for r in device_readings(client, reg)}) == [(65530, "http"),
                                                                                  (65539, "lorawan")]


def test_values_out_of_range_are_rejected_and_the_rest_kept(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]
    # CayenneLPP can say -40.1 °C, which the registry refuses
    payload = base64.b64encode(bytes.fromhex("0167fe6f02687f")).decode()

    response = client.post("/api/v1/ingest/ttn", json=ttn_body(device, frm_payload=payload), headers=TTN_AUTH)

    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [
        {"index": 0, "seq": TTN_SEQ, "quantity": "temperature",
         "reason": "temperature -40.1 °C is outside the valid range -40.0 to 85.0 °C"}]


def test_unmapped_cayenne_channels_are_reported_and_recorded(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]
    payload = base64.b64encode(bytes.fromhex("016700d9096700d9")).decode()

    response = client.post("/api/v1/ingest/ttn", json=ttn_body(device, frm_payload=payload), headers=TTN_AUTH)

    why = "channel 9 (temperature) is not in the channel map"
    assert response.json()["rejected"] == [{"index": 0, "seq": TTN_SEQ, "quantity": None, "reason": why}]
    assert rejections(client, reg) == [("lorawan", why, "f_port 2 f_cnt 311: 01 67 00 d9 09 67 00 d9")]


@pytest.mark.parametrize(("change", "reason", "excerpt"), [
    ({"f_port": 10, "frm_payload": base64.b64encode(b"\x01\x00").decode()},
     "port 10: the compact payload is truncated: 2 bytes, a header alone is 5", "f_port 10 f_cnt 311: 01 00"),
    ({"frm_payload": "%%%"}, "'uplink_message.frm_payload' is not valid base64", '{"end_device_ids":{"device_id":'),
])
def test_an_unreadable_uplink_is_refused_and_its_owner_sees_why(client, register, change, reason, excerpt):
    reg = register(transport="lorawan")

    response = client.post("/api/v1/ingest/ttn", json=ttn_body(reg["device"]["public_id"], **change),
                           headers=TTN_AUTH)

    assert (response.status_code, response.json()["detail"]) == (400, reason)
    [(transport, recorded, shown)] = rejections(client, reg)
    assert (transport, recorded, shown[:len(excerpt)]) == ("lorawan", reason, excerpt)
    assert device_readings(client, reg) == []


def test_an_unknown_device_is_refused_with_how_to_name_it(client):
    response = client.post("/api/v1/ingest/ttn", json=ttn_body("damp-knowle-07"), headers=TTN_AUTH)

    assert response.status_code == 404
    assert response.json()["detail"] == ("there is no device 'damp-knowle-07': name the end device in TTN with the "
                                         "hub's device id (e.g. air-7kq2m9xp), or register it with the hub first")


@pytest.mark.parametrize(("headers", "code", "reason"), [
    ({}, 401, "this needs the TTN integration secret: add the header 'Authorization: Bearer "
              "<SENSING_LORAWAN_TTN_SECRET>'"),
    (CHIRPSTACK_AUTH, 401, "the TTN integration secret was not recognised: check it matches "
                           "SENSING_LORAWAN_TTN_SECRET"),
])
def test_the_integration_secret_is_required(client, register, headers, code, reason):
    reg = register(transport="lorawan")

    response = client.post("/api/v1/ingest/ttn", json=ttn_body(reg["device"]["public_id"]), headers=headers)

    assert (response.status_code, response.json()["detail"]) == (code, reason)
    assert device_readings(client, reg) == []


def test_an_integration_without_a_secret_is_off(database_url, tmp_path):
    settings = Settings(environment="test", database_url=database_url, data_dir=tmp_path / "data",
                        operator_key=OPERATOR_KEY)
    with TestClient(create_app(settings, start_services=False)) as off:
        response = off.post("/api/v1/ingest/chirpstack?event=up", json=chirpstack_body("air-easton-02"),
                            headers=CHIRPSTACK_AUTH)
    assert (response.status_code, response.json()["detail"]) == (
        403, "this hub does not take ChirpStack uplinks: its operator has not set SENSING_LORAWAN_CHIRPSTACK_SECRET")


def test_chirpstacks_other_events_are_acknowledged_and_ignored(client):
    response = client.post("/api/v1/ingest/chirpstack?event=join", json={"deviceInfo": {}}, headers=CHIRPSTACK_AUTH)

    assert response.status_code == 200
    assert response.json()["note"] == "ChirpStack 'join' events carry no readings: ignored"


def test_an_uplink_without_application_payload_stores_nothing(client, register):
    reg = register(transport="lorawan")
    body = ttn_body(reg["device"]["public_id"])
    del body["uplink_message"]["frm_payload"], body["uplink_message"]["f_port"]

    response = client.post("/api/v1/ingest/ttn", json=body, headers=TTN_AUTH)

    assert response.status_code == 200
    assert response.json()["note"] == "the uplink carries no application payload (MAC commands only): nothing to store"
    assert device_readings(client, reg) == []


def test_a_body_that_is_not_json_says_to_choose_json(client):
    response = client.post("/api/v1/ingest/chirpstack?event=up", content=b"\x0a\x24protobuf", headers=CHIRPSTACK_AUTH)

    assert (response.status_code, response.json()["detail"]) == (
        400, "the body is not JSON: set the ChirpStack HTTP integration's format to JSON")


def status_of(client: TestClient, reg) -> dict | None:
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/private",
                          headers={"Authorization": f"Bearer {reg['owner_token']}"})
    return response.json()["status"]


def test_a_status_uplink_is_kept_as_the_devices_last_status_with_the_networks_time(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]
    data = codec.encode_status([{"sensor": "ds18b20@288f3c6a01000055", "fault": "absent"}], 12, 3, battery=3.7)

    response = client.post("/api/v1/ingest/ttn", headers=TTN_AUTH,
                           json=ttn_body(device, f_port=12, frm_payload=base64.b64encode(data).decode()))

    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": [], "device": device, "seq": None,
                               "note": "the device's status: kept as its last status"}
    assert status_of(client, reg) == {
        "state": "online", "message": "", "faults": [{"sensor": "ds18b20@…55", "fault": "absent", "message": ""}],
        "dropped": 0, "untimed": 0, "buffered": 3, "boot": 12, "battery_voltage": 3.7,
        "received_at": "2026-11-20T07:41:12.140000Z", "transport": "lorawan"}
    assert device_readings(client, reg) == []


def test_a_chirpstack_status_uplink_is_kept(client, register):
    reg = register(transport="lorawan")
    body = chirpstack_body(reg["device"]["public_id"])
    body.update(fPort=12, data=base64.b64encode(codec.encode_status([], 1, 0, refused=True)).decode())

    response = client.post("/api/v1/ingest/chirpstack?event=up", json=body, headers=CHIRPSTACK_AUTH)

    assert response.status_code == 200, response.text
    kept = status_of(client, reg)
    assert (kept["message"], kept["boot"], kept["received_at"]) == (
        "config refused: the device's log says why", 1, "2026-11-20T07:45:03.221000Z")


def test_an_unreadable_status_uplink_is_refused_and_the_last_status_stays(client, register):
    reg = register(transport="lorawan")
    device = reg["device"]["public_id"]
    good = base64.b64encode(codec.encode_status([], 1, 0)).decode()
    client.post("/api/v1/ingest/ttn", json=ttn_body(device, f_port=12, frm_payload=good), headers=TTN_AUTH)

    bad = base64.b64encode(bytes.fromhex("0200000100")).decode()
    response = client.post("/api/v1/ingest/ttn", json=ttn_body(device, f_port=12, frm_payload=bad), headers=TTN_AUTH)

    reason = "port 12: the status uplink is truncated: 5 bytes, a header alone is 6"
    assert (response.status_code, response.json()["detail"]) == (400, reason)
    assert rejections(client, reg) == [("lorawan", reason, "f_port 12 f_cnt 311: 02 00 00 01 00")]
    assert status_of(client, reg)["boot"] == 1
