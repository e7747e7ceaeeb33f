"""GET /api/v1/hub: the hub's name, the broker devices publish to, the consent text to show, the key's role."""

from fastapi.testclient import TestClient

from hub.app import create_app


def test_without_services_the_settings_name_the_broker(client):
    response = client.get("/api/v1/hub")

    assert response.status_code == 200
    assert response.json() == {
        "name": "Community sensing hub",
        "broker_host": "127.0.0.1",
        "broker_port": 1883,
        "broker_tls": False,
        "consent_version": "2026-11",
        "key_role": None,
    }


def test_a_broker_on_every_address_is_named_by_the_address_the_caller_used(hub_settings):
    hub_settings.embedded_broker_host = "0.0.0.0"
    hub_settings.embedded_broker_port = 1999
    with TestClient(create_app(hub_settings, start_services=False), base_url="http://hub.example.org") as client:
        info = client.get("/api/v1/hub").json()

    assert (info["broker_host"], info["broker_port"]) == ("hub.example.org", 1999)


def test_a_broker_of_the_hubs_own_is_named_without_its_login(hub_settings):
    hub_settings.broker_url = "mqtt://sensing-hub:hunter2@mqtt.example.org:8883"
    with TestClient(create_app(hub_settings, start_services=False)) as client:
        info = client.get("/api/v1/hub").json()

    assert (info["broker_host"], info["broker_port"], info["broker_tls"]) == ("mqtt.example.org", 8883, False)
    assert "hunter2" not in str(info)


def test_a_tls_broker_is_named_with_its_tls_port(hub_settings):
    hub_settings.broker_url = "mqtts://mqtt.example.org"
    with TestClient(create_app(hub_settings, start_services=False)) as client:
        info = client.get("/api/v1/hub").json()

    assert (info["broker_host"], info["broker_port"], info["broker_tls"]) == ("mqtt.example.org", 8883, True)


def test_a_key_sent_is_checked_and_its_role_told(client, operator, register):
    issued = client.post("/api/v1/keys", json={"name": "Easton workshop"}, headers=operator).json()
    owner = register()["owner_token"]

    roles = [
        client.get("/api/v1/hub", headers={"Authorization": f"Bearer {key}"}).json()["key_role"]
        for key in (issued["key"], owner)
    ]
    roles.append(client.get("/api/v1/hub", headers=operator).json()["key_role"])
    wrong = client.get("/api/v1/hub", headers={"Authorization": "Bearer fac_not-a-key"})

    assert roles == ["facilitator", "owner", "operator"]
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "the key was not recognised: check it was copied whole, or ask the hub operator"
