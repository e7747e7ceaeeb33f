"""The pure pipeline (no database, no broker), and the store's one-query device lookup on both databases."""

from datetime import UTC, datetime

from sqlalchemy import event

from hub.ingest.pipeline import Message, Refusal, Rejected, Stamp, excerpt, process
from hub.ingest.store import lookup
from hub.models import Transport

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp()) - 60
DEVICES = {"air-good": Stamp(7, 70), "air-gone": Stamp(8, None)}


def run(payload: bytes, device: str | None = "air-good", transport: Transport = Transport.mqtt, **limits):
    limits = {"max_message_bytes": 1000, "max_future_seconds": 300, **limits}
    return process([Message(transport, device, payload, NOW)], DEVICES, **limits)


def test_each_good_value_becomes_a_reading_stamped_with_the_agreement_in_force():
    batch = run(b'[{"seq": 3, "t": %d, "v": {"co2": 612, "temperature": 20.5}}]' % T)

    assert batch.readings == [
        {"device_id": 7, "quantity": "co2", "value": 612.0, "measured_at": datetime(2026, 11, 28, 11, 59, tzinfo=UTC),
         "received_at": NOW, "seq": 3, "agreement_id": 70, "transport": "mqtt"},
        {"device_id": 7, "quantity": "temperature", "value": 20.5,
         "measured_at": datetime(2026, 11, 28, 11, 59, tzinfo=UTC), "received_at": NOW, "seq": 3,
         "agreement_id": 70, "transport": "mqtt"},
    ]
    assert batch.rejections == []
    assert batch.outcomes[0].readings == 2


def test_whole_message_refusals_say_why():
    cases = [
        (run(b'{"seq": 1}', device="air-nobody"), Refusal.unidentified, "there is no device 'air-nobody'"),
        (run(b"x" * 1001), Refusal.oversize, "the message is 1001 bytes, more than the limit of 1000 bytes"),
        (run(b'{"seq": 1}', device="air-gone"), Refusal.no_consent,
         "consent for device 'air-gone' has been withdrawn, so its readings are refused"),
        (run(b"[]"), Refusal.unreadable, "the message holds no records"),
        (run(b"[" * 100_000 + b"]" * 100_000, max_message_bytes=10**6), Refusal.unreadable,
         "the message is not valid JSON"),
    ]
    for batch, refusal, reason in cases:
        assert (batch.outcomes[0].refusal, batch.outcomes[0].reason) == (refusal, reason)
        assert batch.readings == []
        assert [r["reason"] for r in batch.rejections] == [reason]


def test_a_time_that_is_not_finite_is_rejected_and_the_rest_kept():
    batch = run(b'[{"seq": 1, "t": Infinity, "v": {"co2": 1}}, {"seq": 2, "t": NaN, "v": {"co2": 1}},'
                b' {"seq": 3, "t": %d, "v": {"co2": 2}}]' % T)

    reason = "'t' must be Unix epoch seconds (a non-negative number)"
    assert batch.outcomes[0].rejected == [Rejected(0, None, None, reason), Rejected(1, None, None, reason)]
    assert [r["seq"] for r in batch.readings] == [3]


def test_a_seq_too_big_for_the_store_is_rejected_and_the_rest_kept():
    batch = run(b'[{"seq": 9223372036854775808, "t": %d, "v": {"co2": 1}}, {"seq": 2, "t": %d, "v": {"co2": 2}}]'
                % (T, T))

    assert batch.outcomes[0].rejected == [
        Rejected(0, None, None, "'seq' 9223372036854775808 is too large (at most 9223372036854775807)")]
    assert [r["seq"] for r in batch.readings] == [2]


def test_rejections_carry_who_claimed_to_send_and_a_readable_excerpt():
    batch = run(b'{"seq": 5, "t": %d, "v": {"hum\\u0000idity": 50}}' % T)

    assert batch.rejections == [{
        "received_at": NOW, "transport": "mqtt", "device_id": 7, "claimed_device": "air-good", "seq": 5,
        "quantity": "hum\\x00idity", "reason": "unknown quantity 'hum\\x00idity'",
        "excerpt": f'{{"seq": 5, "t": {T}, "v": {{"hum\\u0000idity": 50}}}}',
    }]
    assert excerpt(b"\x1b[2J" + b"a" * 200) == "\\x1b[2J" + "a" * 112 + "…"
    assert excerpt(b"\xff\x00") == "�\\x00"


def test_lookup_finds_every_device_of_a_batch_in_one_query(client, register, operator):
    first, second, withdrawn = register(), register(), register()
    gone = withdrawn["device"]["public_id"]
    assert client.post(f"/api/v1/devices/{gone}/withdraw", headers=operator).status_code == 200
    engine = client.app.state.engine
    statements = []

    def note(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.connect() as conn:
            found = lookup(conn, [first["device"]["public_id"], second["device"]["public_id"], gone, "air-nobody",
                                  first["device"]["public_id"]])
    finally:
        event.remove(engine, "before_cursor_execute", note)

    assert len(statements) == 1
    assert {public_id: stamp.agreement_id for public_id, stamp in found.items()} == {
        first["device"]["public_id"]: first["agreement"]["id"],
        second["device"]["public_id"]: second["agreement"]["id"],
        gone: None,
    }


def status(payload: bytes, device: str = "air-good", retained: bool = False):
    return process([Message(Transport.mqtt, device, payload, NOW, status=True, retained=retained)], DEVICES,
                   max_message_bytes=1000, max_future_seconds=300)


def test_a_status_becomes_the_devices_status_row_with_its_keys_sorted():
    batch = status(b'{"state": "online", "message": "", "faults": [{"sensor": "sht4x@0x44", "fault": "crc"}]}',
                   retained=True)

    assert batch.statuses == [{
        "device_id": 7, "received_at": NOW, "transport": "mqtt", "retained": True,
        "status": '{"faults": [{"fault": "crc", "sensor": "sht4x@0x44"}], "message": "", "state": "online"}'}]
    assert (batch.readings, batch.rejections, batch.outcomes[0].status) == ([], [], True)


def test_a_status_that_cannot_be_kept_is_refused_with_the_reason():
    cases = [
        (status(b"online"), Refusal.unreadable, "the status is not valid JSON"),
        (status(b'{"state": "sleepy"}'), Refusal.unreadable,
         "a status needs a 'state': online, offline, asleep, config_invalid"),
        (status(b'{"state": "online"}', device="air-gone"), Refusal.no_consent,
         "consent for device 'air-gone' has been withdrawn, so its status is refused"),
        (status(b'{"state": "online"}', device="air-nobody"), Refusal.unidentified, "there is no device 'air-nobody'"),
    ]
    for batch, refusal, reason in cases:
        assert (batch.outcomes[0].refusal, batch.outcomes[0].reason) == (refusal, reason)
        assert batch.statuses == []
        assert [(r["reason"], r["seq"], r["quantity"]) for r in batch.rejections] == [(reason, None, None)]
