"""Open data: only what owners agreed to publish, at the precision they agreed to, with licence and provenance."""

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
from sqlmodel import Session, select

from hub.api import open as open_api
from hub.models import Device

HEADER = (
    "id,device,kind,placement,location_release,area,h3_cell,quantity,unit,value,measured_at,time_release,agreement_id"
)
LATITUDE, LONGITUDE = 51.4613, -2.5647  # device_body's private location
# The top of the hour, a day ago: recent enough for any retention in these tests.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def send(client, reg: dict[str, Any], records: list[tuple[datetime, dict[str, float]]], first_seq: int = 1) -> None:
    """Post readings as the device does: through HTTP ingest with its secret, a few hundred records a message."""
    device = {"Authorization": f"Bearer {reg['device_secret']}"}
    body = [
        {"seq": seq, "t": int(measured_at.timestamp()), "v": values}
        for seq, (measured_at, values) in enumerate(records, start=first_seq)
    ]
    for start in range(0, len(body), 500):
        part = body[start : start + 500]
        response = client.post("/api/v1/ingest", json=part, headers=device)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": sum(len(r["v"]) for r in part), "duplicates": 0, "rejected": []}


def mark_simulated(client, reg: dict[str, Any]) -> None:
    with Session(client.app.state.engine) as session:
        device = session.exec(select(Device).where(Device.public_id == reg["device"]["public_id"])).one()
        device.simulated = True
        session.add(device)
        session.commit()


def every_minute(count: int, start: datetime = BASE, value: float = 20.0) -> list[tuple[datetime, dict[str, float]]]:
    return [(start + timedelta(minutes=i), {"temperature": value + i % 50 / 10}) for i in range(count)]


def json_rows(client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/open/readings", params=params)
    assert response.status_code == 200, response.text
    return response.json()["readings"]


def csv_rows(client, **params: Any) -> list[dict[str, str]]:
    response = client.get("/api/v1/open/readings.csv", params=params)
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert lines[0] == HEADER
    return list(csv.DictReader(io.StringIO(response.text)))


def devices_in(client, **params: Any) -> tuple[set[str], set[str]]:
    """The device ids in the JSON and the CSV output."""
    return {r["device"] for r in json_rows(client, **params)}, {r["device"] for r in csv_rows(client, **params)}


def test_only_open_sharing_is_published(client, register):
    open_device, community, private = register(), register(sharing="community"), register(sharing="private")
    for reg in (open_device, community, private):
        send(client, reg, every_minute(3))
    published = {open_device["device"]["public_id"]}
    assert devices_in(client) == (published, published)
    assert len(json_rows(client)) == 3 and len(csv_rows(client)) == 3
    # Asking for a withheld device by id gives nothing, the same as a device that does not exist.
    assert json_rows(client, device=private["device"]["public_id"]) == []
    assert csv_rows(client, device=community["device"]["public_id"]) == []


def test_withdrawal_removes_readings_at_once(client, register):
    reg, other = register(), register()
    send(client, reg, every_minute(4))
    send(client, other, every_minute(2))
    public_id = reg["device"]["public_id"]
    assert public_id in devices_in(client)[0] and public_id in devices_in(client)[1]

    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    response = client.post(f"/api/v1/devices/{public_id}/withdraw", headers=owner)
    assert response.status_code == 200 and response.json()["withdrawn"] == 1

    remaining = {other["device"]["public_id"]}
    assert devices_in(client) == (remaining, remaining)
    assert json_rows(client, device=public_id) == [] and csv_rows(client, device=public_id) == []
    counts = {q["name"]: q["readings"] for q in client.get("/api/v1/open").json()["quantities"]}
    assert counts["temperature"] == 2


def test_location_only_at_the_agreed_precision(client, register):
    by_area = register()
    by_cell = register(location_release="h3", location_h3_resolution=7)
    hidden = register(location_release="none")
    for reg in (by_area, by_cell, hidden):
        send(client, reg, every_minute(1))
    expected = {
        by_area["device"]["public_id"]: ("area", "easton", None),
        by_cell["device"]["public_id"]: ("h3", None, h3.latlng_to_cell(LATITUDE, LONGITUDE, 7)),
        hidden["device"]["public_id"]: ("none", None, None),
    }
    rows = json_rows(client)
    assert {r["device"]: (r["location_release"], r["area"], r["h3_cell"]) for r in rows} == expected
    as_csv = {r["device"]: (r["location_release"], r["area"] or None, r["h3_cell"] or None) for r in csv_rows(client)}
    assert as_csv == expected
    assert h3.get_resolution(expected[by_cell["device"]["public_id"]][2]) == 7

    outputs = [
        client.get("/api/v1/open/readings").text,
        client.get("/api/v1/open/readings.csv").text,
        client.get("/api/v1/open/readings", params={"format": "csv"}).text,
        client.get("/api/v1/open").text,
    ]
    for text in outputs:
        for digits in ("51.46", "4613", "2.564", "5647"):
            assert digits not in text
    # Searching by area finds only a device that agreed to release its area.
    assert {r["device"] for r in json_rows(client, area="easton")} == {by_area["device"]["public_id"]}


def test_walking_next_visits_every_row_once_in_id_order(client, register):
    first, second = register(), register()
    send(client, first, every_minute(12))
    send(client, second, every_minute(11))
    url: str | None = "/api/v1/open/readings?limit=5"
    seen: list[int] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert response.links["license"]["url"] == "https://opendatacommons.org/licenses/odbl/1-0/"
        assert body["meta"]["licence"] == "ODbL-1.0"
        assert body["meta"]["source"] == "Community sensing hub"
        if body["next"]:
            assert response.links["next"]["url"] == body["next"]
        else:
            assert "next" not in response.links
        seen += [r["id"] for r in body["readings"]]
        url = body["next"]
        pages += 1
    assert pages == 5  # 23 rows in pages of 5: 5, 5, 5, 5, 3
    assert len(seen) == 23 and seen == sorted(set(seen))


def test_limit_bounds_say_what_to_fix(client):
    response = client.get("/api/v1/open/readings", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["detail"] == "limit: Input should be greater than or equal to 1"
    response = client.get("/api/v1/open/readings", params={"limit": 10001})
    assert response.status_code == 422
    assert response.json()["detail"] == "limit: Input should be less than or equal to 10000"
    response = client.get("/api/v1/open/readings", params={"quantity": "radon"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("quantity: unknown quantity 'radon', choose from pm1, pm2_5, ")


def test_csv_streams_every_row_in_small_chunks(client, register, monkeypatch):
    monkeypatch.setattr(open_api, "CSV_CHUNK_ROWS", 300)
    reg = register()
    start = BASE - timedelta(days=2)  # 2,500 minutes ending before now
    send(client, reg, every_minute(2500, start))
    response = client.get("/api/v1/open/readings.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="open-readings.csv"'
    assert response.headers["x-licence"] == "ODbL-1.0"
    assert response.headers["x-attribution"] == "Residents and community groups contributing to this hub"
    assert response.links["license"]["url"] == "https://opendatacommons.org/licenses/odbl/1-0/"
    lines = response.text.splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 2501
    ids = [int(line.split(",", 1)[0]) for line in lines[1:]]
    assert ids == sorted(set(ids))
    first = next(csv.DictReader(io.StringIO(response.text)))
    assert first["device"] == reg["device"]["public_id"]
    assert (first["quantity"], first["unit"], first["value"]) == ("temperature", "°C", "20.0")
    assert first["measured_at"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The JSON endpoint gives the same file with ?format=csv.
    assert client.get("/api/v1/open/readings", params={"format": "csv"}).text == response.text


def test_hourly_time_release_rounds_down(client, register):
    hourly, exact = register(time_release="hour"), register()
    moment = BASE + timedelta(minutes=37, seconds=15)
    send(client, hourly, [(moment, {"pm2_5": 8.5})])
    send(client, exact, [(moment, {"pm2_5": 9.5})])
    published = {r["device"]: r["measured_at"] for r in json_rows(client)}
    assert published == {
        hourly["device"]["public_id"]: BASE.strftime("%Y-%m-%dT%H:00:00Z"),
        exact["device"]["public_id"]: moment.strftime("%Y-%m-%dT%H:%M:15Z"),
    }
    assert {r["device"]: r["measured_at"] for r in csv_rows(client)} == published
    # Filters compare with the published time, so they cannot reveal the minute an hourly device measured at.
    since = (BASE + timedelta(minutes=30)).isoformat()
    assert {r["device"] for r in json_rows(client, since=since)} == {exact["device"]["public_id"]}
    until = (BASE + timedelta(minutes=30)).isoformat()
    assert {r["device"] for r in json_rows(client, until=until)} == {hourly["device"]["public_id"]}


def test_readings_past_retention_are_not_published(client, register):
    kept_a_week = register(retention_days=7)
    forever = register()
    old, recent = BASE - timedelta(days=9), BASE
    send(client, kept_a_week, [(old, {"co2": 900.0}), (recent, {"co2": 450.0})])
    send(client, forever, [(old, {"co2": 800.0})])
    rows = json_rows(client)
    assert sorted((r["device"], r["value"]) for r in rows) == sorted(
        [(kept_a_week["device"]["public_id"], 450.0), (forever["device"]["public_id"], 800.0)]
    )
    assert len(csv_rows(client)) == 2


def test_simulated_and_indoor_devices_are_not_published(client, register):
    real, simulated, indoor = register(), register(), register(placement="indoor", kind="damp")
    mark_simulated(client, simulated)
    for reg in (real, simulated, indoor):
        send(client, reg, every_minute(2))
    published = {real["device"]["public_id"]}
    assert devices_in(client) == (published, published)


def test_filters_by_area_quantity_device_and_time(client, register):
    easton = register()
    bedminster = register(area="bedminster")
    send(client, easton, [(BASE + timedelta(hours=h), {"pm2_5": 5.0 + h, "pm10": 9.0 + h}) for h in range(4)])
    send(client, bedminster, [(BASE + timedelta(hours=h), {"pm2_5": 7.0 + h}) for h in range(2)])

    def pick(**params: Any) -> list[tuple[str, str, float]]:
        rows = json_rows(client, **params)
        assert [(r["area"], r["quantity"], r["value"]) for r in csv_rows(client, **params)] == [
            (r["area"], r["quantity"], str(r["value"])) for r in rows
        ]
        return [(r["area"], r["quantity"], r["value"]) for r in rows]

    assert pick(area="bedminster") == [("bedminster", "pm2_5", 7.0), ("bedminster", "pm2_5", 8.0)]
    assert pick(area="easton", quantity="pm10") == [("easton", "pm10", v) for v in (9.0, 10.0, 11.0, 12.0)]
    assert pick(device=bedminster["device"]["public_id"], quantity="pm10") == []
    since, until = BASE + timedelta(hours=1), BASE + timedelta(hours=3)
    assert pick(quantity="pm2_5", since=since.isoformat(), until=until.isoformat()) == [
        ("easton", "pm2_5", 6.0),
        ("easton", "pm2_5", 7.0),
        ("bedminster", "pm2_5", 8.0),
    ]
    assert pick(area="nowhere") == []


def test_index_lists_licence_and_quantities_with_counts(client, register):
    first, second = register(), register(sharing="private")
    send(client, first, [(BASE, {"pm2_5": 5.0, "humidity": 60.0}), (BASE + timedelta(minutes=1), {"pm2_5": 6.0})])
    send(client, second, [(BASE, {"pm2_5": 5.0})])
    response = client.get("/api/v1/open")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["licence"] == "ODbL-1.0"
    assert body["meta"]["licence_url"] == "https://opendatacommons.org/licenses/odbl/1-0/"
    assert body["meta"]["attribution"] == "Residents and community groups contributing to this hub"
    assert body["readings_url"] == "http://testserver/api/v1/open/readings"
    assert body["csv_url"] == "http://testserver/api/v1/open/readings.csv"
    quantities = {q["name"]: q for q in body["quantities"]}
    assert quantities["pm2_5"] == {
        "name": "pm2_5",
        "unit": "µg/m³",
        "label": "Particulate matter up to 2.5 µm",
        "readings": 2,
        "devices": 1,
    }
    assert (quantities["humidity"]["readings"], quantities["co2"]["readings"]) == (1, 0)
    assert response.links["license"]["url"] == "https://opendatacommons.org/licenses/odbl/1-0/"


def test_public_row_releases_only_what_was_agreed():
    from types import SimpleNamespace

    from hub.models import Kind, LocationRelease, Placement, TimeRelease
    from hub.open_data import COLUMNS, csv_values, public_row

    row = SimpleNamespace(
        id=7, quantity="pm10", value=12.5, measured_at=datetime(2026, 11, 20, 10, 59, 59, 999999, tzinfo=UTC),
        agreement_id=3, public_id="air-abc12345", kind=Kind.air, placement=Placement.outdoor, area="easton",
        latitude=LATITUDE, longitude=LONGITUDE, location_release=LocationRelease.h3, location_h3_resolution=5,
        time_release=TimeRelease.hour,
    )
    public = public_row(row)
    assert public == {
        "id": 7,
        "device": "air-abc12345",
        "kind": "air",
        "placement": "outdoor",
        "location_release": "h3",
        "area": None,
        "h3_cell": h3.latlng_to_cell(LATITUDE, LONGITUDE, 5),
        "quantity": "pm10",
        "unit": "µg/m³",
        "value": 12.5,
        "measured_at": "2026-11-20T10:00:00Z",
        "time_release": "hour",
        "agreement_id": 3,
    }
    assert tuple(public) == COLUMNS
    assert csv_values(public_row(SimpleNamespace(**{**vars(row), "location_release": LocationRelease.none}))) == [
        7, "air-abc12345", "air", "outdoor", "none", "", "", "pm10", "µg/m³", 12.5, "2026-11-20T10:00:00Z", "hour", 3,
    ]
