"""MQTT ingest over TLS (an mqtts:// SENSING_BROKER_URL), against a Mosquitto with a TLS listener."""

import logging
import shutil
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine

from hub.app import create_app
from hub.ingest.mqtt import BrokerAddress, MqttIngest, parse_broker_url
from hub.services import HubServices
from hub.settings import Settings
from tests.hub.conftest import device_body, device_readings
from tests.services import (
    WAIT,
    Certificates,
    Mosquitto,
    make_certificates,
    mosquitto_path,
    publish,
    require,
    wait_until,
)

pytestmark = [pytest.mark.mosquitto]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    require(shutil.which("openssl") is not None, "openssl is not installed (apt install openssl)")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def broker(certificates: Certificates) -> Iterator[Mosquitto]:
    require(mosquitto_path() is not None, "mosquitto is not installed (apt install mosquitto)")
    with Mosquitto(tls=certificates) as running:
        yield running


def test_mqtts_urls_mean_tls_on_port_8883_by_default():
    assert parse_broker_url("mqtts://hub:pw@broker.example.org") == BrokerAddress(
        "broker.example.org", 8883, "hub", "pw", tls=True)
    assert parse_broker_url("mqtts://broker.example.org:9883").port == 9883
    assert parse_broker_url("mqtt://broker.example.org") == BrokerAddress("broker.example.org", 1883)
    with pytest.raises(ValueError) as refused:
        parse_broker_url("ssl://broker.example.org")
    assert str(refused.value) == (
        "the broker URL 'ssl://broker.example.org' is not of the form mqtt[s]://[user:password@]host[:port]")


def test_a_ca_file_is_refused_without_tls_or_when_it_is_not_there(tmp_path, certificates):
    with pytest.raises(ValidationError, match="SENSING_BROKER_CA_FILE is set but SENSING_BROKER_URL is not an "
                                              "mqtts:// URL, so the connection would not use TLS"):
        Settings(broker_url="mqtt://broker:1883", broker_ca_file=certificates.ca)
    with pytest.raises(ValidationError, match=f"SENSING_BROKER_CA_FILE {tmp_path / 'nowhere.pem'} is not a file"):
        Settings(broker_url="mqtts://broker", broker_ca_file=tmp_path / "nowhere.pem")
    assert Settings(broker_url="mqtts://broker", broker_ca_file=certificates.ca).broker_ca_file == certificates.ca


def test_the_hub_stores_a_reading_published_over_tls(broker, certificates, hub_settings, operator):
    settings = hub_settings.model_copy(update={
        "broker_url": broker.tls_url, "broker_ca_file": certificates.ca,
        "mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}"})
    with TestClient(create_app(settings)) as hub:
        services: HubServices = hub.app.state.services
        assert services.ingest is not None and services.ingest.wait_ready(WAIT), "ingest did not subscribe"
        response = hub.post("/api/v1/devices", json=device_body(), headers=operator)
        assert response.status_code == 201, response.text
        reg = response.json()
        device = reg["device"]["public_id"]
        publish(broker.tls_url, f"sensing/v1/{device}/up", [b'{"seq": 4, "t": 1795860000, "v": {"co2": 612}}'],
                device, reg["device_secret"], ca=certificates.ca)
        wait_until(lambda: services.ingest.counts()["committed"] == 1, "the message committed")
        assert [(r["seq"], r["quantity"], r["value"]) for r in device_readings(hub, reg)] == [(4, "co2", 612.0)]
    assert broker.ports_of(settings.mqtt_client_id) == [broker.tls_port]


def test_ingest_says_why_it_does_not_trust_the_broker(broker, tmp_path, caplog):
    stranger = make_certificates(tmp_path / "stranger", name="Some other CA")
    settings = Settings(environment="test", broker_url=broker.tls_url, broker_ca_file=stranger.ca,
                        data_dir=tmp_path, operator_key="x" * 30)
    ingest = MqttIngest(settings, create_engine("sqlite://"), settings.broker_url)
    with caplog.at_level(logging.WARNING, logger="hub.ingest"):
        ingest.start()
        try:
            assert not ingest.wait_ready(1.5)
        finally:
            ingest.stop()
    assert caplog.messages[0] == (
        f"cannot trust the broker at {broker.tls_url}: self-signed certificate in certificate chain "
        f"(checked against {stranger.ca}); retrying")
    assert ingest.counts()["connects"] == 0
