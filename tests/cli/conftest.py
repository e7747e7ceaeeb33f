"""Fixtures for the `sensing` command's tests. The simulated board is shared with tests/boards."""

import shutil
from dataclasses import dataclass

import httpx
import pytest

from tests.boards.conftest import simulated_board  # noqa: F401
from tests.hub_process import RunningHub, start_hub, stop_hub
from tests.services import Certificates, Mosquitto, make_certificates, mosquitto_path, require


@pytest.fixture
def hub(running_hub):
    """The hub process the command talks to (tests/conftest.py's running_hub)."""
    return running_hub


@dataclass
class TlsHub:
    hub: RunningHub
    broker: Mosquitto
    certificates: Certificates
    facilitator_key: str


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory) -> TlsHub:
    """A hub process whose broker speaks only TLS: a Mosquitto with a TLS listener (and anonymous logins, so the
    devices' own do not need writing to its password file), certificates of a CA made by openssl."""
    require(shutil.which("openssl") is not None, "openssl is not installed (apt install openssl)")
    require(mosquitto_path() is not None, "mosquitto is not installed (apt install mosquitto)")
    folder = tmp_path_factory.mktemp("tls-hub")
    certificates = make_certificates(folder / "certificates")
    with Mosquitto(tls=certificates) as broker:
        proc, hub = start_hub(folder, extra_env={"SENSING_BROKER_URL": broker.tls_url,
                                                 "SENSING_BROKER_CA_FILE": str(certificates.ca)})  # fmt: skip
        try:
            issued = httpx.post(f"{hub.url}/api/v1/keys", json={"name": "Easton workshop team"},
                                headers={"Authorization": f"Bearer {hub.operator_key}"})  # fmt: skip
            assert issued.status_code == 201, issued.text
            yield TlsHub(hub, broker, certificates, issued.json()["key"])
        finally:
            stop_hub(proc)
