"""`sensing data download` against a real hub process, with readings put in through HTTP ingest."""

import csv
import io
import json
import os
import pty
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer.main
from typer.testing import CliRunner

from cli.main import app
from hub.open_data import COLUMNS
from tests.hub_process import SENSING, RunningHub, start_hub, stop_hub

runner = CliRunner()
T0 = int(datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp())
QUANTITIES = ("temperature", "humidity", "pm2_5")
UNITS = {"temperature": "°C", "humidity": "%", "pm2_5": "µg/m³"}
LICENCE = "ODbL-1.0"


def register(hub: RunningHub, area: str, sharing: str) -> dict:
    body = {
        "device": {"kind": "air", "board": "ESP32_GENERIC", "transport": "http", "placement": "outdoor",
                   "area": area, "latitude": 51.46, "longitude": -2.56},
        "agreement": {"consent_version": "2026-11", "sharing": sharing, "purposes": ["research"],
                      "location_release": "area", "collection_method": "workshop", "collected_by": "tests"},
    }  # fmt: skip
    operator = {"Authorization": f"Bearer {hub.operator_key}"}
    response = httpx.post(f"{hub.url}/api/v1/devices", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return response.json()


def values(i: int) -> dict[str, float]:
    return {"temperature": round(10 + i / 10, 1), "humidity": 50 + i / 2, "pm2_5": i * 1.5}


def seed(hub: RunningHub) -> list[tuple]:
    """Three devices, readings a minute apart from T0; returns the open ones as CSV rows without their id."""
    expected = []
    for area, sharing, count in (("easton", "open", 40), ("knowle", "open", 20), ("easton", "private", 5)):
        reg = register(hub, area, sharing)
        records = [{"seq": i, "t": T0 + 60 * i, "v": values(i)} for i in range(count)]
        response = httpx.post(f"{hub.url}/api/v1/ingest", json=records,
                              headers={"Authorization": f"Bearer {reg['device_secret']}"})  # fmt: skip
        assert response.json() == {"accepted": 3 * count, "duplicates": 0, "rejected": []}
        if sharing == "open":
            expected += [
                (reg["device"]["public_id"], "air", "outdoor", "area", area, "", quantity, UNITS[quantity],
                 repr(value), datetime.fromtimestamp(T0 + 60 * i, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "exact",
                 str(reg["agreement"]["id"]))
                for i in range(count) for quantity, value in values(i).items()
            ]  # fmt: skip
    return expected


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> tuple[RunningHub, list[tuple]]:
    proc, running = start_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield running, seed(running)
    finally:
        stop_hub(proc)


def download(hub: RunningHub, *args: str):
    return runner.invoke(app, ["data", "download", "--hub", hub.url, *args])


def csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def without_id(rows: list[list[str]]) -> list[tuple]:
    return sorted(tuple(row[1:]) for row in rows)


def hub_csv(hub: RunningHub, **params) -> str:
    return httpx.get(f"{hub.url}/api/v1/open/readings.csv", params=params).text


def leftovers(output: Path) -> list[str]:
    return sorted(p.name for p in output.parent.iterdir() if p.name != output.name)


def licence_lines(output: Path, hub: RunningHub) -> list[str]:
    text = output.with_name(output.name + ".licence.txt").read_text()
    first, *rest = text.splitlines()
    stamp = first.rsplit(", downloaded ", 1)[1].rstrip(".")
    assert abs(datetime.fromisoformat(stamp).timestamp() - time.time()) < 120
    assert first == f"Open data from Community sensing hub ({hub.url}), downloaded {stamp}."
    return rest


def test_an_area_time_range_and_two_quantities(hub, tmp_path):
    running, expected = hub
    output = tmp_path / "easton.csv"

    result = download(running, "-o", str(output), "--area", "easton", "--quantity", "temperature", "--quantity",
                      "pm2_5", "--since", "2026-03-01T09:10:00Z", "--until", "2026-03-01 09:30")  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ 40 readings written to {output} (licence: {LICENCE}).\n"
    rows = csv_rows(output)
    assert rows[0] == list(COLUMNS)
    assert without_id(rows[1:]) == sorted(
        row for row in expected
        if row[4] == "easton" and row[6] in ("temperature", "pm2_5") and "09:10:00Z" <= row[9][11:] < "09:30:00Z"
    )  # fmt: skip
    ids = [int(row[0]) for row in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 40
    assert licence_lines(output, running) == [
        f"Licence: {LICENCE} (https://opendatacommons.org/licenses/odbl/1-0/)",
        "Attribution: Residents and community groups contributing to this hub",
        "Readings: 40 in easton.csv",
        f"Asked for: hub {running.url}; area easton; quantities pm2_5, temperature; "
        "from 2026-03-01T09:10:00+00:00; before 2026-03-01T09:30:00+00:00",
    ]
    assert leftovers(output) == ["easton.csv.licence.txt"]


def test_everything_open_is_byte_for_byte_the_hubs_own_csv(hub, tmp_path):
    running, expected = hub
    output = tmp_path / "all.csv"

    result = download(running, "-o", str(output), "--page-size", "7")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ 180 readings written to {output} (licence: {LICENCE}).\n"
    assert without_id(csv_rows(output)[1:]) == sorted(expected)  # the private device's readings are not there
    assert output.read_text(encoding="utf-8") == hub_csv(running)


def test_nothing_matches_writes_the_header_alone(hub, tmp_path):
    running, _ = hub
    output = tmp_path / "none.csv"

    result = download(running, "-o", str(output), "--area", "nowhere")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ 0 readings written to {output} (licence: {LICENCE}).\n"
    assert output.read_text() == ",".join(COLUMNS) + "\n"


@pytest.mark.parametrize("name, options", [("all.parquet", ()), ("all.data", ("--format", "parquet"))])
def test_parquet_is_the_csv_typed(hub, tmp_path, name, options):
    running, _ = hub
    output = tmp_path / name

    result = download(running, "-o", str(output), "--page-size", "50", *options)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ 180 readings written to {output} (licence: {LICENCE}).\n"
    table = pq.read_table(output)
    assert table.schema.names == list(COLUMNS)
    assert {name: str(table.schema.field(name).type) for name in ("id", "value", "measured_at", "area")} == {
        "id": "int64", "value": "double", "measured_at": "timestamp[us, tz=UTC]", "area": "string",
    }  # fmt: skip
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert metadata["sensing.licence"] == LICENCE
    assert metadata["sensing.attribution"] == "Residents and community groups contributing to this hub"
    assert metadata["sensing.query"] == f"hub {running.url}"
    as_csv = [
        [row["measured_at"].strftime("%Y-%m-%dT%H:%M:%SZ") if k == "measured_at" else ("" if v is None else str(v))
         for k, v in row.items()]
        for row in table.to_pylist()
    ]  # fmt: skip
    assert as_csv == list(csv.reader(io.StringIO(hub_csv(running))))[1:]
    assert table.column("value").type == pa.float64()
    assert leftovers(output) == [f"{name}.licence.txt"]


def test_in_a_terminal_it_shows_the_readings_so_far(hub, tmp_path):
    running, _ = hub
    terminal, stderr = pty.openpty()
    proc = subprocess.Popen([SENSING, "data", "download", "--hub", running.url, "-o", str(tmp_path / "all.csv"),
                             "--page-size", "20"], stdout=subprocess.PIPE, stderr=stderr)  # fmt: skip
    os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the download closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert proc.wait(timeout=60) == 0
    assert b"180 readings so far" in shown


def state_rows(state: Path) -> int:
    try:
        return json.loads(state.read_text())["rows"]
    except (OSError, ValueError):
        return 0


def kill_midway(hub: RunningHub, output: Path, *args: str, at: int = 5) -> int:
    """Start a download a reading per request, and kill it (as a power cut would) once it has `at` readings."""
    proc = subprocess.Popen([SENSING, "data", "download", "--hub", hub.url, "-o", str(output), "--page-size", "1",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    state = output.with_name(output.name + ".part.state")
    deadline = time.monotonic() + 30
    while state_rows(state) < at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    rows = state_rows(state)
    assert at <= rows < 180, "the download was to be killed mid-way"
    return rows


def test_a_killed_download_continues_from_its_last_complete_row(hub, tmp_path):
    running, expected = hub
    output = tmp_path / "all.csv"
    done = kill_midway(running, output)
    with output.with_name("all.csv.part").open("a") as part:
        part.write("99999,half a row")  # written after the last checkpoint: must not survive

    result = download(running, "-o", str(output))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"Continuing after {done} readings already downloaded.\n"
        f"✓ 180 readings written to {output} (licence: {LICENCE}).\n"
    )
    assert output.read_text(encoding="utf-8") == hub_csv(running)
    assert leftovers(output) == ["all.csv.licence.txt"]


def test_other_choices_start_afresh_with_a_warning(hub, tmp_path):
    running, _ = hub
    output = tmp_path / "out.csv"
    kill_midway(running, output, "--area", "knowle")

    result = download(running, "-o", str(output), "--area", "easton")

    assert result.exit_code == 0
    assert result.stderr == (
        f"! {output}.part holds a download for other choices (hub {running.url}; area knowle): starting afresh.\n"
    )
    assert result.stdout == f"✓ 120 readings written to {output} (licence: {LICENCE}).\n"
    assert output.read_text(encoding="utf-8") == hub_csv(running, area="easton")


def test_the_hub_going_away_mid_download_then_coming_back(tmp_path):
    proc, running = start_hub(tmp_path)
    try:
        seed(running)
        output = tmp_path / "all.csv"
        download_proc = subprocess.Popen([SENSING, "data", "download", "--hub", running.url, "-o", str(output),
                                          "--page-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)  # fmt: skip
        state = output.with_name("all.csv.part.state")
        deadline = time.monotonic() + 30
        while state_rows(state) < 5 and download_proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        stop_hub(proc)
    stdout, stderr = download_proc.communicate(timeout=60)
    done = state_rows(state)
    assert (download_proc.returncode, stdout) == (1, "")
    assert stderr == (
        f"✗ The download from {running.url} was interrupted after {done} readings: "
        "run the same command again to continue.\n"
    )
    assert 5 <= done < 180

    # The same hub, on the same port and data, started again.
    port = int(running.url.rsplit(":", 1)[1])
    proc, again = start_hub(tmp_path, mqtt_port=running.mqtt_port, http_port=port)
    try:
        assert again.url == running.url
        result = download(again, "-o", str(output))
        assert (result.exit_code, result.stderr) == (0, "")
        assert result.stdout == (
            f"Continuing after {done} readings already downloaded.\n"
            f"✓ 180 readings written to {output} (licence: {LICENCE}).\n"
        )
        assert output.read_text(encoding="utf-8") == hub_csv(again)
    finally:
        stop_hub(proc)


def test_an_unreachable_hub(tmp_path):
    output = tmp_path / "x.csv"
    result = runner.invoke(app, ["data", "download", "--hub", "http://127.0.0.1:9", "-o", str(output)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The hub at http://127.0.0.1:9 is not reachable: is it running, and is the address right?\n"
    )
    assert os.listdir(tmp_path) == []


def test_an_empty_time_range(hub, tmp_path):
    running, _ = hub
    result = download(running, "-o", str(tmp_path / "x.csv"), "--since", "2026-03-02", "--until", "2026-03-01T12:00Z")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The time range is empty: --since 2026-03-02T00:00:00+00:00 is not before "
        "--until 2026-03-01T12:00:00+00:00.\n"
    )


def test_a_time_that_is_not_a_time(hub, tmp_path):
    running, _ = hub
    result = download(running, "-o", str(tmp_path / "x.csv"), "--since", "last tuesday")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ --since 'last tuesday' is not a time: write it like 2026-11-20 or 2026-11-20T10:00:00Z.\n"
    )


def test_an_unknown_quantity_is_the_hubs_sentence(hub, tmp_path):
    running, _ = hub
    result = download(running, "-o", str(tmp_path / "x.csv"), "--quantity", "temperature", "--quantity", "pm25")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The hub said no (422): quantity: unknown quantity 'pm25', choose from pm1, pm2_5, pm10, co2, temperature, "
        "humidity, pressure, surface_temperature, dew_point, surface_humidity, condensation_risk, battery_voltage.\n"
    )
    assert os.listdir(tmp_path) == []


def test_every_option_is_documented():
    command = typer.main.get_command(app).commands["data"].commands["download"]
    options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
    text = (Path(__file__).parents[2] / "docs" / "open-data.md").read_text()
    assert len(options) == 9
    assert [opt for opt in options if f"| `{opt}`" not in text] == []
