"""MQTT ingest through the hub's services, against a real Mosquitto and against the embedded amqtt broker."""

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from hub.app import create_app
from hub.broker import EmbeddedBroker
from hub.broker_access import Logins
from hub.ingest.mqtt import MqttIngest, parse_broker_url
from hub.ingest.store import REJECTION
from hub.services import HubServices
from hub.settings import Settings
from tests.hub.conftest import device_body
from tests.services import WAIT, free_port, publish, wait_until

T = int(time.time()) - 60


def record(seq: int, **values: float) -> bytes:
    return json.dumps({"seq": seq, "t": T, "v": values}).encode()


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_kind(request) -> str:
    return request.param


@pytest.fixture
def hub(broker_kind: str, hub_settings: Settings, request) -> Iterator[TestClient]:
    """The hub with its services running: ingest against a fresh Mosquitto, or against its embedded broker."""
    update: dict[str, Any] = {"mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}"}
    if broker_kind == "mosquitto":
        update["broker_url"] = request.getfixturevalue("fresh_mosquitto").url
    else:
        update["embedded_broker_port"] = free_port()
    settings = hub_settings.model_copy(update=update)
    with TestClient(create_app(settings)) as client:
        services: HubServices = client.app.state.services
        assert services.ingest is not None and services.ingest.wait_ready(WAIT), "ingest did not subscribe"
        yield client


def services_of(client: TestClient) -> HubServices:
    return client.app.state.services


def register(client: TestClient, operator: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/devices", json=device_body(), headers=operator)
    assert response.status_code == 201, response.text
    return response.json()


def owner_get(client: TestClient, reg: dict[str, Any], what: str) -> Any:
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/{what}",
                          headers={"Authorization": f"Bearer {reg['owner_token']}"})
    assert response.status_code == 200, response.text
    return response.json()


def topic(reg: dict[str, Any]) -> str:
    return f"sensing/v1/{reg['device']['public_id']}/up"


def as_device(reg: dict[str, Any]) -> tuple[str, str]:
    """The MQTT user name and password of a registered device."""
    return reg["device"]["public_id"], reg["device_secret"]


def test_published_readings_are_stored_once_even_when_sent_twice(hub, operator):
    reg = register(hub, operator)
    ingest = services_of(hub).ingest
    assert ingest is not None

    publish(services_of(hub).broker_url, topic(reg),
            [record(1, temperature=19.5, humidity=70), record(1, temperature=19.5, humidity=70),
             record(2, temperature=19.25, humidity=71.5)], *as_device(reg))

    wait_until(lambda: ingest.counts()["committed"] == 3, "three messages committed")
    assert {k: ingest.counts()[k] for k in ("received", "committed", "stored", "duplicates", "rejected")} == {
        "received": 3, "committed": 3, "stored": 4, "duplicates": 2, "rejected": 0}
    rows = owner_get(hub, reg, "readings")["readings"]
    assert sorted((r["seq"], r["quantity"], r["value"], r["transport"], r["agreement_id"]) for r in rows) == [
        (1, "humidity", 70.0, "mqtt", reg["agreement"]["id"]),
        (1, "temperature", 19.5, "mqtt", reg["agreement"]["id"]),
        (2, "humidity", 71.5, "mqtt", reg["agreement"]["id"]),
        (2, "temperature", 19.25, "mqtt", reg["agreement"]["id"]),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_messages_are_recorded_and_the_subscriber_keeps_going(hub, operator):
    reg = register(hub, operator)
    url = services_of(hub).broker_url
    ingest = services_of(hub).ingest
    assert ingest is not None

    publish(url, topic(reg), [b"\x00\x01 not json", record(1, co2=-5)], *as_device(reg))
    publish(url, topic(reg), [record(2, co2=415)], *as_device(reg))

    wait_until(lambda: ingest.counts()["committed"] == 3, "three messages committed")
    assert [(r["seq"], r["value"]) for r in owner_get(hub, reg, "readings")["readings"]] == [(2, 415.0)]
    assert [(r["seq"], r["quantity"], r["reason"], r["excerpt"], r["transport"])
            for r in reversed(owner_get(hub, reg, "rejections"))] == [
        (None, None, "the message is not valid JSON", "\\x00\\x01 not json", "mqtt"),
        (1, "co2", "co2 -5 ppm is outside the valid range 0.0 to 40000.0 ppm",
         f'{{"seq": 1, "t": {T}, "v": {{"co2": -5}}}}', "mqtt"),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("broker_kind", ["mosquitto"], indirect=True)
def test_a_message_for_an_unknown_device_is_recorded(hub):
    """Only on a broker that lets anyone publish: the embedded one refuses unknown devices at CONNECT."""
    ingest = services_of(hub).ingest
    assert ingest is not None

    publish(services_of(hub).broker_url, "sensing/v1/air-nobody/up", [record(1, co2=400)])

    wait_until(lambda: ingest.counts()["committed"] == 1, "the message committed")
    with hub.app.state.engine.connect() as conn:
        stranger = conn.execute(select(REJECTION.c.device_id, REJECTION.c.claimed_device, REJECTION.c.reason)
                                .where(REJECTION.c.device_id.is_(None))).all()
    assert [tuple(r) for r in stranger] == [(None, "air-nobody", "there is no device 'air-nobody'")]


def test_a_persistent_session_keeps_messages_published_while_ingest_is_away(hub, operator, hub_settings):
    reg = register(hub, operator)
    services = services_of(hub)
    assert services.ingest is not None and services.broker_url is not None
    client_id, address = services.ingest.client_id, services.ingest.address
    services.ingest.stop()

    publish(services.broker_url, topic(reg), [record(1, pm2_5=8.5), record(2, pm2_5=9.0)], *as_device(reg))
    external = services.broker is None  # as HubServices subscribes: shared and MQTT 5 on a broker of our own
    settings = hub.app.state.settings
    again = MqttIngest(settings, hub.app.state.engine, services.broker_url, client_id=client_id,
                       share_group=settings.ingest_share_group if external else "", mqtt5=external,
                       credentials=(address.username, address.password or "") if address.username else None).start()
    try:
        wait_until(lambda: again.counts()["committed"] == 2, "the two messages kept for the session committed")
    finally:
        again.stop()
    assert [(r["seq"], r["value"]) for r in owner_get(hub, reg, "readings")["readings"]] == [(1, 8.5), (2, 9.0)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("broker_kind", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("fresh_mosquitto", [{"persistence": True}], indirect=True)
def test_ingest_reconnects_when_the_broker_comes_back(hub, operator, fresh_mosquitto):
    reg = register(hub, operator)
    ingest = services_of(hub).ingest
    assert ingest is not None
    publish(fresh_mosquitto.url, topic(reg), [record(1, humidity=55)], *as_device(reg))
    wait_until(lambda: ingest.counts()["committed"] == 1, "the first message committed")

    fresh_mosquitto.restart()
    # kept for the session if ingest is not back yet
    publish(fresh_mosquitto.url, topic(reg), [record(2, humidity=56)], *as_device(reg))
    wait_until(lambda: ingest.counts()["connects"] == 2 and ingest.ready.is_set(), "ingest reconnected")
    publish(fresh_mosquitto.url, topic(reg), [record(3, humidity=57)], *as_device(reg))

    wait_until(lambda: ingest.counts()["committed"] == 3, "the messages after the restart committed")
    assert [(r["seq"], r["value"]) for r in owner_get(hub, reg, "readings")["readings"]] == [
        (1, 55.0), (2, 56.0), (3, 57.0)]


def test_the_embedded_broker_moves_to_the_next_free_port_when_its_port_is_taken(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def start_and_stop() -> str:
            logins = Logins(create_engine("sqlite://"), "sensing-hub", "its-password")  # no one logs in here
            broker = await EmbeddedBroker("127.0.0.1", port, logins).start()
            try:
                return broker.url
            finally:
                await broker.stop()

        url = asyncio.run(start_and_stop())

    moved_to = parse_broker_url(url).port
    assert port < moved_to <= port + 20
    assert url == f"mqtt://127.0.0.1:{moved_to}"
    assert (f"port {port} on 127.0.0.1 is in use (another MQTT broker?): the embedded broker listens on {moved_to}"
            in caplog.messages)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_status_is_recorded_and_ingest_keeps_going(hub, operator):
    reg = register(hub, operator)
    url, ingest = services_of(hub).broker_url, services_of(hub).ingest
    assert ingest is not None and url is not None
    status_topic = topic(reg).replace("/up", "/status")

    publish(url, status_topic, [b"online", b'{"state": "online", "faults": [{"fault": "crc"}]}'], *as_device(reg))
    publish(url, topic(reg), [record(1, co2=415)], *as_device(reg))

    wait_until(lambda: ingest.counts()["committed"] == 3, "three messages committed")
    assert (ingest.counts()["rejected"], ingest.counts()["statuses"]) == (2, 0)
    assert [r["reason"] for r in reversed(owner_get(hub, reg, "rejections"))] == [
        "the status is not valid JSON", "a fault needs a 'sensor'"]
    assert [(r["seq"], r["value"]) for r in owner_get(hub, reg, "readings")["readings"]] == [(1, 415.0)]
    assert owner_get(hub, reg, "private")["status"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_new_subscriber_gets_the_retained_status_and_keeps_its_first_time(hub, operator):
    from tests.hub.test_broker_access import publish_retained

    reg = register(hub, operator)
    services = services_of(hub)
    assert services.ingest is not None and services.broker_url is not None
    publish_retained(services.broker_url, reg, b'{"state": "asleep"}')
    wait_until(lambda: owner_get(hub, reg, "private")["status"] is not None, "the status kept")
    first = owner_get(hub, reg, "private")["status"]

    # Another subscription (a worker starting, the hub restarting): the broker hands the status over again.
    address, external = services.ingest.address, services.broker is None
    again = MqttIngest(hub.app.state.settings, hub.app.state.engine, services.broker_url,
                       client_id=f"test-again-{uuid.uuid4().hex[:8]}", mqtt5=external,
                       credentials=(address.username, address.password or "") if address.username else None).start()
    try:
        # (amqtt hands it over twice, at QoS 0 and 1)
        wait_until(lambda: again.counts()["committed"] >= 1, "the retained status handed over and committed")
        wait_until(lambda: again.counts()["committed"] == again.counts()["received"], "every copy committed")
    finally:
        again.stop()
    assert owner_get(hub, reg, "private")["status"] == first
