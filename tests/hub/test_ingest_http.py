"""HTTP ingest, on SQLite and PostgreSQL: counts, exact reasons, consent stamping and refusals."""

import time
from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.ingest.store import REJECTION
from tests.hub.conftest import device_readings, device_rejections, owner

T = int(time.time()) - 60  # a minute ago: well inside the allowed clock skew
FUTURE = 4102444800  # 2100-01-01


def post(client: TestClient, secret: str | None, body, *, raw: bytes | None = None):
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    if raw is not None:
        return client.post("/api/v1/ingest", content=raw, headers=headers)
    return client.post("/api/v1/ingest", json=body, headers=headers)


def test_a_record_is_stored_once_per_quantity_and_a_resend_is_a_duplicate(client, register):
    reg = register()
    record = {"seq": 17, "t": T, "v": {"temperature": 21.4, "humidity": 63.5}}

    first = post(client, reg["device_secret"], record)
    again = post(client, reg["device_secret"], record)

    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    rows = device_readings(client, reg)
    assert sorted((r["quantity"], r["value"], r["unit"], r["seq"], r["transport"]) for r in rows) == [
        ("humidity", 63.5, "%", 17, "http"),
        ("temperature", 21.4, "°C", 17, "http"),
    ]
    assert {r["agreement_id"] for r in rows} == {reg["agreement"]["id"]}
    assert {datetime.fromisoformat(r["measured_at"]).timestamp() for r in rows} == {T}
    assert device_rejections(client, reg) == []


def test_bad_records_are_rejected_with_their_reason_and_good_ones_beside_them_kept(client, register):
    reg = register()
    body = [
        {"seq": 1, "t": T, "v": {"pm2_5": 12.5, "pm10": 20}},
        {"seq": 2, "t": T, "v": {"pm2_5": -3, "pm10": 21}},
        {"seq": 3, "t": T, "v": {"radon": 4}},
        {"seq": 4, "t": FUTURE, "v": {"pm2_5": 1}},
        {"seq": 5, "t": T},
        {"seq": 1, "t": T, "v": {"pm2_5": 12.5}},
    ]

    response = post(client, reg["device_secret"], body)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 3,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "seq": 2, "quantity": "pm2_5",
             "reason": "pm2_5 -3 µg/m³ is outside the valid range 0.0 to 1000.0 µg/m³"},
            {"index": 2, "seq": 3, "quantity": "radon", "reason": "unknown quantity 'radon'"},
            {"index": 3, "seq": 4, "quantity": None,
             "reason": "the time 4102444800 (2100-01-01 00:00:00 UTC) is more than 300 s ahead of the hub's clock: "
                       "check the device's clock"},
            {"index": 4, "seq": None, "quantity": None,
             "reason": "'v' must be an object of quantity name to value, with at least one entry"},
        ],
    }
    assert sorted((r["seq"], r["quantity"], r["value"]) for r in device_readings(client, reg)) == [
        (1, "pm10", 20.0), (1, "pm2_5", 12.5), (2, "pm10", 21.0),
    ]
    seen = [(r["seq"], r["quantity"], r["reason"], r["transport"], r["claimed_device"])
            for r in reversed(device_rejections(client, reg))]
    public_id = reg["device"]["public_id"]
    assert seen == [
        (2, "pm2_5", "pm2_5 -3 µg/m³ is outside the valid range 0.0 to 1000.0 µg/m³", "http", public_id),
        (3, "radon", "unknown quantity 'radon'", "http", public_id),
        (4, None, "the time 4102444800 (2100-01-01 00:00:00 UTC) is more than 300 s ahead of the hub's clock: "
                  "check the device's clock", "http", public_id),
        (None, None, "'v' must be an object of quantity name to value, with at least one entry", "http", public_id),
    ]


def test_an_unreadable_message_is_refused_with_400_and_recorded(client, register):
    reg = register()

    not_json = post(client, reg["device_secret"], None, raw=b'{"seq": 1, "t": ')
    not_text = post(client, reg["device_secret"], None, raw=b"\xff\xfe\x00garbage")
    not_records = post(client, reg["device_secret"], 42)

    assert (not_json.status_code, not_json.json()) == (400, {"detail": "the message is not valid JSON"})
    assert (not_text.status_code, not_text.json()) == (400, {"detail": "the message is not UTF-8 text"})
    assert (not_records.status_code, not_records.json()) == (
        400, {"detail": "the message must be a record object or a list of records"})
    assert [(r["reason"], r["excerpt"]) for r in reversed(device_rejections(client, reg))] == [
        ("the message is not valid JSON", '{"seq": 1, "t": '),
        ("the message is not UTF-8 text", "��\\x00garbage"),
        ("the message must be a record object or a list of records", "42"),
    ]
    assert device_readings(client, reg) == []


def test_a_missing_or_wrong_secret_is_refused_with_401_and_recorded(client, register):
    register()
    record = {"seq": 1, "t": T, "v": {"temperature": 20.0}}

    missing = post(client, None, record)
    wrong = post(client, "dev_not-a-real-secret", record)

    assert missing.status_code == 401
    assert missing.json() == {
        "detail": "this needs the device secret: send it as 'Authorization: Bearer <device secret>'"}
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "the device secret was not recognised: check it was copied whole"}
    with client.app.state.engine.connect() as conn:
        rows = conn.execute(select(REJECTION.c.device_id, REJECTION.c.claimed_device, REJECTION.c.reason,
                                   REJECTION.c.transport).order_by(REJECTION.c.id)).all()
    assert [tuple(r) for r in rows] == [
        (None, None, "this needs the device secret: send it as 'Authorization: Bearer <device secret>'", "http"),
        (None, None, "the device secret was not recognised: check it was copied whole", "http"),
    ]


def test_an_oversize_message_is_refused_with_413_and_recorded(client, register):
    reg = register()
    body = [{"seq": i, "t": T, "v": {"co2": 400 + i}} for i in range(2000)]

    response = post(client, reg["device_secret"], body)

    size = len(response.request.content)
    assert size > 65536
    assert response.status_code == 413
    reason = f"the message is {size} bytes, more than the limit of 65536 bytes"
    assert response.json() == {"detail": reason}
    assert [r["reason"] for r in device_rejections(client, reg)] == [reason]
    assert device_readings(client, reg) == []


def test_each_reading_carries_the_agreement_in_force_and_withdrawal_refuses_new_ones(client, register, operator):
    reg = register()
    public_id = reg["device"]["public_id"]
    first = post(client, reg["device_secret"], {"seq": 1, "t": T, "v": {"co2": 420}})
    new_agreement = client.post(f"/api/v1/devices/{public_id}/agreements", headers=owner(reg), json={
        "consent_version": "2026-11", "sharing": "community", "purposes": ["community_awareness"],
        "location_release": "area", "collection_method": "online form", "collected_by": "the resident",
    })
    assert new_agreement.status_code == 201, new_agreement.text
    second = post(client, reg["device_secret"], {"seq": 2, "t": T, "v": {"co2": 430}})
    withdrawn = client.post(f"/api/v1/devices/{public_id}/withdraw", headers=owner(reg))
    assert withdrawn.status_code == 200, withdrawn.text
    third = post(client, reg["device_secret"], {"seq": 3, "t": T, "v": {"co2": 440}})

    assert first.json()["accepted"] == 1
    assert second.json()["accepted"] == 1
    reason = f"consent for device '{public_id}' has been withdrawn, so its readings are refused"
    assert (third.status_code, third.json()) == (403, {"detail": reason})
    assert [(r["seq"], r["agreement_id"]) for r in device_readings(client, reg)] == [
        (1, reg["agreement"]["id"]), (2, new_agreement.json()["id"]),
    ]
    assert reg["agreement"]["id"] != new_agreement.json()["id"]
    assert [(r["reason"], r["excerpt"]) for r in device_rejections(client, reg)] == [
        (reason, f'{{"seq":3,"t":{T},"v":{{"co2":440}}}}')]
