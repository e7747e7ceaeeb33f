"""Each device's last status at the hub, on SQLite and PostgreSQL, as ingest keeps it (the pipeline and the store;
MQTT in test_ingest_mqtt and test_broker_access, LoRaWAN in test_lorawan_api): shown to the device's owner and the
operator only, replaced only by a status that arrived later, erased with the readings."""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from hub.ingest.pipeline import Message
from hub.ingest.store import ingest
from hub.models import Transport
from tests.hub.conftest import owner

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def keep(client: TestClient, device: str, payload: bytes, at: datetime, retained: bool = False):
    """Run a status message through ingest as the MQTT ingest does."""
    message = Message(Transport.mqtt, device, payload, at, status=True, retained=retained)
    return ingest(client.app.state.engine, [message], client.app.state.settings)[0]


def private(client: TestClient, reg, headers=None):
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/private", headers=headers or owner(reg))
    assert response.status_code == 200, response.text
    return response.json()["status"]


def test_the_owner_and_the_operator_see_the_last_status_and_nobody_else(client, register, operator):
    reg = register()
    device = reg["device"]["public_id"]
    assert private(client, reg) is None  # nothing arrived yet

    keep(client, device, b'{"state": "online", "message": "config refused: interval must be at least 5 seconds", '
                         b'"faults": [], "dropped": 2, "untimed": 0}', T0)

    shown = {"state": "online", "message": "config refused: interval must be at least 5 seconds", "faults": [],
             "dropped": 2, "untimed": 0, "buffered": None, "boot": None, "battery_voltage": None,
             "received_at": "2026-11-28T12:00:00Z", "transport": "mqtt"}
    assert private(client, reg) == shown
    assert private(client, reg, operator) == shown
    other = register()
    assert client.get(f"/api/v1/devices/{device}/private", headers=owner(other)).status_code == 403
    assert "status" not in client.get(f"/api/v1/devices/{device}").json()
    assert all("status" not in d for d in client.get("/api/v1/devices").json())


def test_a_status_that_arrived_earlier_never_replaces_a_later_one(client, register):
    reg = register()
    device = reg["device"]["public_id"]

    keep(client, device, b'{"state": "online"}', T0)
    keep(client, device, b'{"state": "offline"}', T0 - timedelta(seconds=1))  # a worker that committed late

    assert (private(client, reg)["state"], private(client, reg)["received_at"]) == ("online", "2026-11-28T12:00:00Z")


def test_a_retained_status_handed_over_again_keeps_the_time_it_first_arrived(client, register):
    reg = register()
    device = reg["device"]["public_id"]
    keep(client, device, b'{"state": "offline"}', T0)

    keep(client, device, b'{"state": "offline"}', T0 + timedelta(hours=5), retained=True)  # the hub restarted
    assert private(client, reg)["received_at"] == "2026-11-28T12:00:00Z"
    keep(client, device, b'{"state": "offline"}', T0 + timedelta(hours=6))  # the device said it again
    assert private(client, reg)["received_at"] == "2026-11-28T18:00:00Z"
    keep(client, device, b'{"state": "asleep"}', T0 + timedelta(hours=7), retained=True)  # changed while away
    assert (private(client, reg)["state"], private(client, reg)["received_at"]) == ("asleep", "2026-11-28T19:00:00Z")


def test_a_malformed_status_is_recorded_as_a_rejection_and_the_last_good_one_stays(client, register):
    reg = register()
    device = reg["device"]["public_id"]
    keep(client, device, b'{"state": "online"}', T0)

    batch = keep(client, device, b'{"state": "online", "dropped": -1}', T0 + timedelta(minutes=1))

    assert batch.outcomes[0].reason == "'dropped' in a status must be a non-negative integer"
    rejections = client.get(f"/api/v1/devices/{device}/rejections", headers=owner(reg)).json()
    assert [(r["reason"], r["transport"], r["excerpt"]) for r in rejections] == [
        ("'dropped' in a status must be a non-negative integer", "mqtt", '{"state": "online", "dropped": -1}')]
    assert private(client, reg)["received_at"] == "2026-11-28T12:00:00Z"


def test_erasing_the_readings_erases_the_status(client, register):
    reg = register()
    device = reg["device"]["public_id"]
    keep(client, device, b'{"state": "online"}', T0)

    assert client.delete(f"/api/v1/devices/{device}/readings", headers=owner(reg)).status_code == 200
    assert private(client, reg) is None

