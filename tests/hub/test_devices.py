"""Registering devices with consent, and what each audience may see of them."""

import time

from tests.hub.conftest import device_body, owner


def test_register_returns_secrets_once_and_stores_only_hashes(client, operator, register, hub_settings):
    reg = register()
    device = reg["device"]
    assert device["public_id"].startswith("air-") and len(device["public_id"]) == 12
    assert reg["device_secret"].startswith("dev_") and reg["owner_token"].startswith("own_")
    assert reg["agreement"]["sharing"] == "open"
    assert reg["agreement"]["consent_version"] == "2026-11"
    assert len(reg["agreement"]["consent_sha256"]) == 64

    from sqlalchemy import create_engine, text

    engine = create_engine(hub_settings.sqlalchemy_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM device")).mappings().one()
    engine.dispose()
    stored = " ".join(str(v) for v in row.values())
    assert reg["device_secret"] not in stored and reg["owner_token"] not in stored
    assert len(row["secret_hash"]) == 64


def test_public_view_hides_secret_and_exact_location(client, register):
    reg = register()
    public_id = reg["device"]["public_id"]
    for body in (client.get(f"/api/v1/devices/{public_id}").json(), client.get("/api/v1/devices").json()[0]):
        assert body["public_id"] == public_id
        assert body["area"] == "easton"
        assert body["sharing"] == "open" and body["consent_active"] is True
        for hidden in ("latitude", "longitude", "secret_hash", "owner_token_hash", "device_secret"):
            assert hidden not in body


def test_private_view_for_owner_and_operator_only(client, register, operator):
    reg = register()
    other = register()
    url = f"/api/v1/devices/{reg['device']['public_id']}/private"
    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    assert client.get(url, headers=owner).json()["latitude"] == 51.4613
    assert client.get(url, headers=operator).json()["longitude"] == -2.5647
    response = client.get(url, headers={"Authorization": f"Bearer {other['owner_token']}"})
    assert response.status_code == 403
    assert response.json()["detail"] == "only the device's owner or the hub operator can see this"
    response = client.get(url)
    assert response.status_code == 401
    assert response.json()["detail"] == "this needs a key: send it as 'Authorization: Bearer <key>'"


def test_registration_needs_staff_key(client, register):
    reg = register()
    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    response = client.post("/api/v1/devices", json=device_body(), headers=owner)
    assert response.status_code == 403
    response = client.post("/api/v1/devices", json=device_body(), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert "not recognised" in response.json()["detail"]


def test_facilitator_key_can_register(client, operator):
    issued = client.post("/api/v1/keys", json={"name": "Easton workshop"}, headers=operator)
    assert issued.status_code == 201
    facilitator = {"Authorization": f"Bearer {issued.json()['key']}"}
    response = client.post("/api/v1/devices", json=device_body(), headers=facilitator)
    assert response.status_code == 201
    assert response.json()["device"]["registered_by"] == "Easton workshop"
    # A facilitator cannot issue keys.
    assert client.post("/api/v1/keys", json={"name": "x"}, headers=facilitator).status_code == 403


def test_bad_registration_says_what_to_fix(client, operator):
    response = client.post("/api/v1/devices", json=device_body(purposes=["selling"]), headers=operator)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("unknown purpose selling: choose from ")
    response = client.post("/api/v1/devices", json=device_body(consent_version="1999"), headers=operator)
    assert response.status_code == 422
    assert response.json()["detail"] == "there is no consent text version '1999'"
    response = client.post("/api/v1/devices", json=device_body(kind="water"), headers=operator)
    assert response.status_code == 422
    assert response.json()["detail"] == "device.kind: Input should be 'air' or 'damp'"
    response = client.post("/api/v1/devices", json=device_body(location_release="h3"), headers=operator)
    assert response.json()["detail"] == "location_release 'h3' needs location_h3_resolution (0 coarsest to 9)"
    # Nothing half-registered was left behind.
    assert client.get("/api/v1/devices").json() == []


def test_new_agreement_then_withdraw(client, register):
    reg = register(sharing="private")
    public_id = reg["device"]["public_id"]
    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    body = device_body(sharing="open")["agreement"]
    response = client.post(f"/api/v1/devices/{public_id}/agreements", json=body, headers=owner)
    assert response.status_code == 201
    assert client.get(f"/api/v1/devices/{public_id}").json()["sharing"] == "open"
    listed = client.get(f"/api/v1/devices/{public_id}/agreements", headers=owner).json()
    assert [a["sharing"] for a in listed] == ["private", "open"]

    response = client.post(f"/api/v1/devices/{public_id}/withdraw", headers=owner)
    assert response.status_code == 200
    assert response.json()["withdrawn"] == 2
    public = client.get(f"/api/v1/devices/{public_id}").json()
    assert public["consent_active"] is False and public["sharing"] is None
    statuses = [a["status"] for a in client.get(f"/api/v1/devices/{public_id}/agreements", headers=owner).json()]
    assert statuses == ["withdrawn", "withdrawn"]


def test_consent_texts_are_published_with_hash(client):
    import hashlib

    text = client.get("/api/v1/consent/texts/2026-11").json()
    assert text["sha256"] == hashlib.sha256(text["wording"].encode()).hexdigest()
    assert client.get("/api/v1/consent/texts/nope").status_code == 404
    assert "research" in client.get("/api/v1/consent/purposes").json()


def test_erase_deletes_the_devices_readings_and_nothing_else(client, register, operator):
    import time

    first, second = register(), register()
    now = int(time.time()) - 60
    for reg in (first, second):
        body = [{"seq": s, "t": now, "v": {"temperature": 20.0 + s, "humidity": 50.0}} for s in range(3)]
        sent = client.post("/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {reg['device_secret']}"})
        assert sent.json()["accepted"] == 6
    url = f"/api/v1/devices/{first['device']['public_id']}/readings"
    owner = {"Authorization": f"Bearer {first['owner_token']}"}

    assert client.delete(url, headers={"Authorization": f"Bearer {second['owner_token']}"}).status_code == 403
    response = client.delete(url, headers=owner)
    assert response.status_code == 200
    assert response.json() == {"erased": 6}
    assert client.get(url, headers=owner).json()["readings"] == []
    open_rows = client.get("/api/v1/open/readings").json()["readings"]
    assert {r["device"] for r in open_rows} == {second["device"]["public_id"]}
    assert len(open_rows) == 6
    other = f"/api/v1/devices/{second['device']['public_id']}/readings"
    assert len(client.get(other, headers=operator).json()["readings"]) == 6


def test_a_device_registered_as_simulated_says_so_publicly(client, operator, register):
    real = register()["device"]["public_id"]
    response = client.post("/api/v1/devices", json={**device_body(), "simulated": True}, headers=operator)
    assert response.status_code == 201
    simulated = response.json()["device"]["public_id"]
    listed = {d["public_id"]: d["simulated"] for d in client.get("/api/v1/devices").json()}
    assert listed == {real: False, simulated: True}
    assert client.get(f"/api/v1/devices/{simulated}").json()["simulated"] is True


def test_the_list_shows_each_devices_agreement_in_force(client, register):
    first, second, third = register(sharing="private"), register(sharing="community"), register(sharing="open")
    owner = {"Authorization": f"Bearer {first['owner_token']}"}
    body = device_body(sharing="open")["agreement"]
    assert client.post(f"/api/v1/devices/{first['device']['public_id']}/agreements", json=body,
                       headers=owner).status_code == 201  # fmt: skip
    third_owner = {"Authorization": f"Bearer {third['owner_token']}"}
    withdrawn = client.post(f"/api/v1/devices/{third['device']['public_id']}/withdraw", headers=third_owner)
    assert withdrawn.status_code == 200

    listed = {d["public_id"]: (d["sharing"], d["consent_active"]) for d in client.get("/api/v1/devices").json()}
    assert listed == {
        first["device"]["public_id"]: ("open", True),
        second["device"]["public_id"]: ("community", True),
        third["device"]["public_id"]: (None, False),
    }


def test_the_owner_reads_the_readings_oldest_or_newest_first_a_page_at_a_time(client, register):
    reg = register()
    t = int(time.time()) - 600
    records = [{"seq": seq, "t": t + seq, "v": {"temperature": 20 + seq / 10}} for seq in range(1, 6)]
    sent = client.post("/api/v1/ingest", json=records, headers={"Authorization": f"Bearer {reg['device_secret']}"})
    assert sent.json()["accepted"] == 5
    url = f"/api/v1/devices/{reg['device']['public_id']}/readings"

    def pages(query: str) -> list[list[int]]:
        seen, next_url = [], f"{url}?{query}"
        while next_url:
            response = client.get(next_url, headers=owner(reg))
            assert response.status_code == 200, response.text
            body = response.json()
            assert response.links.get("next", {}).get("url") == body["next"]
            seen.append([r["seq"] for r in body["readings"]])
            next_url = body["next"]
        return seen

    assert pages("limit=2") == [[1, 2], [3, 4], [5]]
    assert pages("limit=2&order=newest") == [[5, 4], [3, 2], [1]]
    assert pages("order=newest&limit=3&quantity=temperature") == [[5, 4, 3], [2, 1]]
    refused = client.get(f"{url}?order=latest", headers=owner(reg))
    assert (refused.status_code, refused.json()["detail"]) == (422, "order: Input should be 'oldest' or 'newest'")
