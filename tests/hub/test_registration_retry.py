"""A registration sent again with its Idempotency-Key (its answer lost) finds the same device: never a second one."""

import time

import httpx

from tests.hub.conftest import device_body

KEY = "8c0e7d2a-5b1f-4e3a-9d6c-2f4b8a1e7c90"


def post(client, headers, key=KEY, **overrides) -> httpx.Response:
    return client.post("/api/v1/devices", json=device_body(**overrides), headers=headers | {"Idempotency-Key": key})


def test_the_same_key_and_body_twice_is_one_device_with_new_secrets(client, operator):
    first = post(client, operator)
    again = post(client, operator)

    assert (first.status_code, again.status_code) == (201, 200)
    first, again = first.json(), again.json()
    assert (first["repeated"], again["repeated"]) == (False, True)
    assert again["device"] == first["device"] and again["agreement"] == first["agreement"]
    assert [d["public_id"] for d in client.get("/api/v1/devices").json()] == [first["device"]["public_id"]]
    # The first answer's secrets were never seen (that is why it was sent again): they are replaced.
    assert again["device_secret"] != first["device_secret"] and again["owner_token"] != first["owner_token"]
    private = f"/api/v1/devices/{first['device']['public_id']}/private"
    assert client.get(private, headers={"Authorization": f"Bearer {again['owner_token']}"}).status_code == 200
    assert client.get(private, headers={"Authorization": f"Bearer {first['owner_token']}"}).status_code == 401


def test_the_same_key_with_another_body_is_refused(client, operator):
    first = post(client, operator).json()

    response = post(client, operator, sharing="private")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"this Idempotency-Key was first sent to register {first['device']['public_id']} with other details: send "
        "the same details as then to repeat that registration, or a new key to register another device"
    )
    assert len(client.get("/api/v1/devices").json()) == 1


def test_a_device_heard_from_keeps_its_secret(client, operator):
    first = post(client, operator).json()
    device = first["device"]["public_id"]
    sent = client.post("/api/v1/ingest", json={"seq": 1, "t": int(time.time()) - 60, "v": {"temperature": 21.4}},
                       headers={"Authorization": f"Bearer {first['device_secret']}"})  # fmt: skip
    assert sent.json()["accepted"] == 1, sent.text

    response = post(client, operator)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"{device}, registered with this Idempotency-Key, has sent to the hub since, so its secret is not "
        "replaced: use the device secret and owner token its registration gave"
    )
    private = f"/api/v1/devices/{device}/private"
    assert client.get(private, headers={"Authorization": f"Bearer {first['owner_token']}"}).status_code == 200


def test_keys_are_per_key_holder_and_without_one_every_post_registers(client, operator):
    issued = client.post("/api/v1/keys", json={"name": "Easton workshop"}, headers=operator).json()
    facilitator = {"Authorization": f"Bearer {issued['key']}"}

    mine, theirs = post(client, operator), post(client, facilitator)
    plain = [client.post("/api/v1/devices", json=device_body(), headers=operator) for _ in range(2)]

    assert [r.status_code for r in (mine, theirs, *plain)] == [201] * 4
    assert len({r.json()["device"]["public_id"] for r in (mine, theirs, *plain)}) == 4


def test_a_key_too_short_is_refused(client, operator):
    response = post(client, operator, key="1")
    assert response.status_code == 422
    assert client.get("/api/v1/devices").json() == []
