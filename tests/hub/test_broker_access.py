"""Devices log in with their own id and secret and use only their own topics: the embedded broker checks it
itself, and a real Mosquitto checks it with the password and ACL files `sensing hub broker-files` writes."""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from hub.app import create_app
from hub.ingest.mqtt import MqttIngest, parse_broker_url
from hub.services import HubServices
from hub.settings import Settings
from tests.hub.conftest import OPERATOR_KEY, device_body
from tests.services import WAIT, Mosquitto, free_port, mosquitto_path, publish, require, wait_until

T = int(time.time()) - 60
SENSING = str(Path(sys.executable).parent / "sensing")
HUB_USER = "sensing-hub"


def record(seq: int, **values: float) -> bytes:
    return json.dumps({"seq": seq, "t": T, "v": values}).encode()


@dataclass
class GuardedHub:
    """The hub with its services, and a broker that lets in only registered devices and the hub's ingest."""

    client: TestClient
    url: str  # the broker, without credentials
    mosquitto: Mosquitto | None
    files_dir: Path  # where `sensing hub broker-files` writes for Mosquitto
    files: list[str]  # the output of each `sensing hub broker-files`
    env: dict[str, str]

    @property
    def ingest(self) -> MqttIngest:
        services: HubServices = self.client.app.state.services
        assert services.ingest is not None
        return services.ingest

    def register(self) -> dict[str, Any]:
        response = self.client.post("/api/v1/devices", json=device_body(),
                                    headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert response.status_code == 201, response.text
        reg = response.json()
        self.refresh()
        return reg

    def refresh(self) -> None:
        """Mosquitto: make it read the files the hub wrote again (SENSING_BROKER_FILES_DIR), as an operator does
        after registrations."""
        if self.mosquitto is not None:
            self.mosquitto.reload()

    def readings(self, reg: dict[str, Any]) -> list[tuple[int, str, float]]:
        return sorted((r["seq"], r["quantity"], r["value"]) for r in self.owned(reg, "readings")["readings"])

    def owned(self, reg: dict[str, Any], what: str) -> Any:
        response = self.client.get(f"/api/v1/devices/{reg['device']['public_id']}/{what}",
                                   headers={"Authorization": f"Bearer {reg['owner_token']}"})
        assert response.status_code == 200, response.text
        return response.json()


def broker_files(env: dict[str, str], directory: Path) -> str:
    result = subprocess.run([SENSING, "hub", "broker-files", "--dir", str(directory)], env=env, cwd=directory.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(params=["embedded", "mosquitto"])
def guarded(request, hub_settings: Settings, database_url: str, tmp_path: Path) -> Iterator[GuardedHub]:
    update: dict[str, Any] = {"mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}"}
    mosquitto = None
    directory = tmp_path / "broker-files"
    env: dict[str, str] = {}
    files: list[str] = []
    if request.param == "mosquitto":
        require(mosquitto_path() is not None, "mosquitto is not installed (apt install mosquitto)")
        port = free_port()
        broker_url = f"mqtt://{HUB_USER}:{secrets.token_urlsafe(16)}@127.0.0.1:{port}"
        update |= {"broker_url": broker_url, "broker_files_dir": directory}
        env = {**os.environ, "DATABASE_URL": database_url, "SENSING_BROKER_URL": broker_url,
               "SENSING_ENVIRONMENT": "test", "SENSING_OPERATOR_KEY": OPERATOR_KEY}
        files.append(broker_files(env, directory))  # before any device: the hub's user alone
        mosquitto = Mosquitto(port=port, allow_anonymous=False,
                              extra_config=f"password_file {directory / 'passwords'}\nacl_file {directory / 'acl'}")
        mosquitto.start()
    else:
        update["embedded_broker_port"] = free_port()
    settings = hub_settings.model_copy(update=update)
    try:
        with TestClient(create_app(settings)) as client:
            services: HubServices = client.app.state.services
            assert services.ingest is not None and services.ingest.wait_ready(WAIT), "ingest did not subscribe"
            url = mosquitto.url if mosquitto else services.broker_url
            assert url is not None
            yield GuardedHub(client, url, mosquitto, directory, files, env)
    finally:
        if mosquitto is not None:
            mosquitto.close()


def creds(reg: dict[str, Any]) -> tuple[str, str]:
    return reg["device"]["public_id"], reg["device_secret"]


def topic(public_id: str, kind: str = "up") -> str:
    return f"sensing/v1/{public_id}/{kind}"


def connack(url: str, username: str | None, password: str | None, will_topic: str | None = None) -> mqtt.ReasonCode:
    """Connect as a device does (MQTT 3.1.1) and return the broker's answer to CONNECT."""
    address = parse_broker_url(url)
    answered: list[mqtt.ReasonCode] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if will_topic is not None:
        client.will_set(will_topic, b"offline", qos=1, retain=True)
    client.on_connect = lambda _c, _u, _f, code, _p: (answered.append(code), done.set())
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        assert done.wait(WAIT), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return answered[0]


class Listener:
    """A device subscribed to topic filters, keeping every message the broker delivers to it."""

    def __init__(self, url: str, reg: dict[str, Any], filters: list[str]):
        address = parse_broker_url(url)
        self.received: list[str] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(*creds(reg))
        self.client.on_message = lambda _c, _u, message: self.received.append(message.topic)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe([(f, 1) for f in filters])
        assert subscribed.wait(WAIT), "no SUBACK"
        self.own_up = topic(reg["device"]["public_id"])

    def round_trip(self) -> None:
        """Publish and wait for the PUBACK: whatever the broker sent before has arrived (TCP keeps the order)."""
        info = self.client.publish(self.own_up, record(1, co2=400), qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_publishes_with_its_secret_and_its_readings_are_stored(guarded):
    reg = guarded.register()
    public_id, secret = creds(reg)

    publish(guarded.url, topic(public_id), [record(1, co2=415), record(2, co2=420)], public_id, secret)

    wait_until(lambda: guarded.ingest.counts()["committed"] == 2, "two messages committed")
    assert guarded.readings(reg) == [(1, "co2", 415.0), (2, "co2", 420.0)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_wrong_secret_an_unknown_device_and_no_credentials_are_refused_at_connect(guarded, caplog):
    reg = guarded.register()
    public_id, secret = creds(reg)
    other_secret = guarded.register()["device_secret"]

    answers = {
        "own secret": connack(guarded.url, public_id, secret),
        "another device's secret": connack(guarded.url, public_id, other_secret),
        "unknown device": connack(guarded.url, "air-nobody", secret),
        "no credentials": connack(guarded.url, None, None),
        "the hub's user, a device's secret": connack(guarded.url, HUB_USER, secret),
    }

    assert {what: str(code) for what, code in answers.items()} == {
        "own secret": "Success",
        "another device's secret": "Not authorized",
        "unknown device": "Not authorized",
        "no credentials": "Not authorized",
        "the hub's user, a device's secret": "Not authorized",
    }
    if guarded.mosquitto is None:  # the embedded broker says why, once a refusal
        refusals = [m.split(": ", 1)[1] for m in caplog.messages if m.startswith("refused an MQTT client")]
        assert refusals == ["wrong secret", "unknown device", "no user name or password",
                            "wrong password for the hub's user"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_device_publishing_under_another_devices_id_is_neither_delivered_nor_stored(guarded):
    mine, theirs = guarded.register(), guarded.register()
    public_id, secret = creds(mine)

    # The broker acknowledges and drops it, as MQTT 3.1.1 has no way to refuse a publish.
    publish(guarded.url, topic(theirs["device"]["public_id"]), [record(1, co2=9999)], public_id, secret)
    publish(guarded.url, topic(public_id), [record(1, co2=400)], public_id, secret)  # then one of its own

    wait_until(lambda: guarded.ingest.counts()["committed"] == 1, "its own message committed")
    assert guarded.ingest.counts()["received"] == 1
    assert guarded.readings(mine) == [(1, "co2", 400.0)]
    assert guarded.readings(theirs) == []
    assert guarded.owned(theirs, "rejections") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_device_receives_nothing_of_other_devices(guarded):
    mine, theirs = guarded.register(), guarded.register()
    their_id = theirs["device"]["public_id"]
    # The embedded broker refuses these subscriptions; Mosquitto grants them and delivers nothing through them.
    listener = Listener(guarded.url, mine, ["sensing/v1/#", "sensing/v1/+/up", topic(their_id, "status")])
    try:
        publish(guarded.url, topic(their_id), [record(1, co2=410)], *creds(theirs))
        publish(guarded.url, topic(their_id, "status"), [b'{"state": "online"}'], *creds(theirs))
        wait_until(lambda: guarded.ingest.counts()["committed"] == 2, "their reading and status committed")
        listener.round_trip()
        wait_until(lambda: guarded.ingest.counts()["committed"] == 3, "the listener's own reading committed")
    finally:
        listener.close()

    assert listener.received == []
    assert guarded.readings(theirs) == [(1, "co2", 410.0)]
    assert guarded.owned(theirs, "private")["status"]["state"] == "online"


def vanish(url: str, reg: dict[str, Any], will_topic: str, will: bytes) -> mqtt.ReasonCode:
    """Connect with a last will, then drop the connection without DISCONNECT, so the broker sends the will."""
    address = parse_broker_url(url)
    answered: list[mqtt.ReasonCode] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set(*creds(reg))
    client.will_set(will_topic, will, qos=1)
    client.on_connect = lambda _c, _u, _f, code, _p: (answered.append(code), done.set())
    client.connect(address.host, address.port)
    client.loop_start()
    assert done.wait(WAIT), "no CONNACK"
    client.loop_stop()
    sock = client.socket()
    if sock is not None:
        sock.close()
    return answered[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_last_will_on_another_devices_topic_never_reaches_it(guarded):
    mine, theirs = guarded.register(), guarded.register()
    public_id, secret = creds(mine)

    # The embedded broker refuses the connection; Mosquitto lets it in and drops the will when it would send it.
    vanish(guarded.url, mine, topic(theirs["device"]["public_id"]), record(1, co2=9999))
    publish(guarded.url, topic(public_id), [record(1, co2=400)], public_id, secret)

    wait_until(lambda: guarded.ingest.counts()["committed"] == 1, "its own message committed")
    assert guarded.ingest.counts()["received"] == 1
    assert guarded.readings(theirs) == []
    assert guarded.owned(theirs, "rejections") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("guarded", ["mosquitto"], indirect=True)
def test_broker_files_hold_every_device_and_the_hubs_user(guarded):
    first, second = guarded.register(), guarded.register()
    directory = guarded.files_dir
    written_by_the_hub = (directory / "passwords").read_text().splitlines()

    output = broker_files(guarded.env, directory)

    assert guarded.files[0].strip() == f"✓ 0 devices written to {directory / 'passwords'} and {directory / 'acl'}."
    assert output.strip() == f"✓ 2 devices written to {directory / 'passwords'} and {directory / 'acl'}."
    lines = (directory / "passwords").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [HUB_USER] + sorted(
        [first["device"]["public_id"], second["device"]["public_id"]])
    assert lines[1:] == written_by_the_hub[1:]  # each device's hash was made once, at registration
    assert lines[0] != written_by_the_hub[0]  # the hub's own: hashed again, with a new salt, each time
    assert (directory / "passwords").stat().st_mode & 0o777 == 0o600
    assert (directory / "acl").read_text() == (
        "# Written by `sensing hub broker-files`: each device publishes and reads only under its own id.\n"
        "pattern write sensing/v1/%u/up\n"
        "pattern write sensing/v1/%u/status\n"
        "pattern read sensing/v1/%u/config\n"
        "\n"
        "# The hub's ingest.\n"
        f"user {HUB_USER}\n"
        "topic read sensing/v1/+/up\n"
        "topic read sensing/v1/+/status\n"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("guarded", ["embedded"], indirect=True)
def test_a_stranger_cannot_knock_the_ingest_off_the_embedded_broker(guarded):
    reg = guarded.register()
    ingest = guarded.ingest
    configured_id = guarded.client.app.state.settings.mqtt_client_id
    assert ingest.client_id.startswith(f"{configured_id}-") and len(ingest.client_id) == len(configured_id) + 17

    # A stranger who knows the configured id (it is in the docs) connects with it, with a clean session.
    stranger = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=configured_id, protocol=mqtt.MQTTv311)
    stranger.username_pw_set(HUB_USER, "a guess")
    address = parse_broker_url(guarded.url)
    stranger.connect(address.host, address.port)
    stranger.loop_start()
    time.sleep(0.5)
    stranger.disconnect()
    stranger.loop_stop()

    public_id, secret = creds(reg)
    publish(guarded.url, topic(public_id), [record(1, co2=415)], public_id, secret)
    wait_until(lambda: guarded.ingest.counts()["committed"] == 1, "the message committed")
    assert ingest.counts()["connects"] == 1  # never knocked off, never reconnected


def publish_retained(url: str, reg: dict[str, Any], payload: bytes) -> None:
    """Publish the device's status as the firmware does: retained, QoS 1, and wait for the PUBACK."""
    address = parse_broker_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set(*creds(reg))
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        info = client.publish(topic(reg["device"]["public_id"], "status"), payload, qos=1, retain=True)
        info.wait_for_publish(WAIT)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_hubs_ingest_keeps_each_devices_status_and_its_last_will(guarded):
    # Mosquitto lets the ingest read the status topics only by the acl `sensing hub broker-files` writes.
    reg = guarded.register()
    fault = {"sensor": "sht4x@0x44", "fault": "crc", "message": "sht4x@0x44 sent word 0 with a bad CRC"}
    said = {"dropped": 0, "faults": [fault], "message": "", "state": "online", "untimed": 0}

    publish_retained(guarded.url, reg, json.dumps(said).encode())
    wait_until(lambda: guarded.ingest.counts()["committed"] == 1, "the status committed")
    kept = guarded.owned(reg, "private")["status"]
    vanish(guarded.url, reg, topic(reg["device"]["public_id"], "status"), b'{"state": "offline"}')
    wait_until(lambda: guarded.ingest.counts()["committed"] == 2, "the last will committed")
    gone = guarded.owned(reg, "private")["status"]

    kept_at = kept.pop("received_at")
    assert kept == {**said, "buffered": None, "boot": None, "battery_voltage": None, "transport": "mqtt"}
    assert (gone["state"], gone["faults"], gone["dropped"], gone["transport"]) == ("offline", [], None, "mqtt")
    assert datetime.fromisoformat(gone["received_at"]) > datetime.fromisoformat(kept_at)
