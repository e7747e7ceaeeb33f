"""Hub fixtures: an app on a real database (SQLite and PostgreSQL), a client, and registered devices."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.app import create_app
from hub.settings import Settings

OPERATOR_KEY = "test-operator-key-that-is-long-enough"


@pytest.fixture
def hub_settings(database_url: str, tmp_path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_dir=tmp_path / "data",
        operator_key=OPERATOR_KEY,
    )


@pytest.fixture
def client(hub_settings: Settings) -> Iterator[TestClient]:
    """The hub's HTTP API without its MQTT services (tests of MQTT ingest start those themselves)."""
    with TestClient(create_app(hub_settings, start_services=False)) as test_client:
        yield test_client


@pytest.fixture
def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_KEY}"}


def device_body(**overrides: Any) -> dict[str, Any]:
    """A registration request; keyword arguments override device or agreement fields by name."""
    device = {
        "kind": "air",
        "board": "ESP32_GENERIC",
        "transport": "mqtt",
        "placement": "outdoor",
        "area": "easton",
        "label": "front garden",
        "latitude": 51.4613,
        "longitude": -2.5647,
    }
    agreement = {
        "consent_version": "2026-11",
        "sharing": "open",
        "purposes": ["community_awareness", "research"],
        "location_release": "area",
        "collection_method": "workshop",
        "collected_by": "Easton workshop team",
    }
    for key, value in overrides.items():
        (device if key in device or key in ("simulated",) else agreement)[key] = value
    return {"device": device, "agreement": agreement}


@pytest.fixture
def register(client: TestClient, operator: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Register a device through the API; returns the registration response (with secret and owner token)."""

    def _register(**overrides: Any) -> dict[str, Any]:
        response = client.post("/api/v1/devices", json=device_body(**overrides), headers=operator)
        assert response.status_code == 201, response.text
        return response.json()

    return _register


def owner(reg: dict[str, Any]) -> dict[str, str]:
    """The headers of the device's owner (the owner token from the registration)."""
    return {"Authorization": f"Bearer {reg['owner_token']}"}


def device_readings(client: TestClient, reg: dict[str, Any]) -> list[dict[str, Any]]:
    """The device's readings, as its owner sees them."""
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/readings", headers=owner(reg))
    assert response.status_code == 200, response.text
    return response.json()["readings"]


def device_rejections(client: TestClient, reg: dict[str, Any]) -> list[dict[str, Any]]:
    """What the hub refused from the device, newest first, as its owner sees it."""
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/rejections", headers=owner(reg))
    assert response.status_code == 200, response.text
    return response.json()
