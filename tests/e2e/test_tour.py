"""The README's five-minute tour, step by step, against a hub started like `make run` starts it."""

import csv
import io
import json
import shutil
import subprocess
import time

import httpx

from tests.firmware.support import REPO
from tests.hub_process import SENSING, RunningHub
from tests.services import require, wait_until


def sensing(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SENSING, *args], capture_output=True, text=True, timeout=60, env=env)



def register(hub: RunningHub, sharing: str = "open") -> dict[str, str]:
    result = sensing(
        "device", "register", "--hub", hub.url, "--key", hub.operator_key, "--area", "easton",
        "--sharing", sharing, "--collected-by", "README tour",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if line.strip()}
    device_id = result.stdout.split("Registered ")[1].split()[0]
    return {"id": device_id, "secret": lines["Device"], "owner": lines["Owner"], "stdout": result.stdout}


def test_banner_says_where_everything_is(running_hub):
    log = running_hub.log()
    assert f"API           {running_hub.url}/api/v1" in log
    assert f"API docs      {running_hub.url}/docs" in log
    assert f"Open data     {running_hub.url}/api/v1/open/readings" in log
    assert f"MQTT broker   mqtt://127.0.0.1:{running_hub.mqtt_port} (embedded)" in log
    assert f"Operator key  {running_hub.operator_key}" in log
    assert httpx.get(f"{running_hub.url}/docs").status_code == 200


def test_tour_register_publish_with_mosquitto_pub_and_download(running_hub, tmp_path):
    require(shutil.which("mosquitto_pub") is not None, "mosquitto_pub is not installed (apt install mosquitto-clients)")
    device = register(running_hub)
    assert f"✓ Registered {device['id']} in easton, sharing: open." in device["stdout"]

    measured = int(time.time()) - 60
    record = json.dumps({"seq": 1, "t": measured, "v": {"temperature": 21.4, "humidity": 63.5}})
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(running_hub.mqtt_port), "-q", "1",
         "-u", device["id"], "-P", device["secret"], "-t", f"sensing/v1/{device['id']}/up", "-m", record],
        check=True, timeout=15,
    )  # fmt: skip

    owner = {"Authorization": f"Bearer {device['owner']}"}
    url = f"{running_hub.url}/api/v1/devices/{device['id']}/readings"
    wait_until(lambda: httpx.get(url, headers=owner).json()["readings"], "the reading stored at the hub")
    readings = httpx.get(url, headers=owner).json()["readings"]
    assert sorted((r["quantity"], r["value"], r["unit"]) for r in readings) == [
        ("humidity", 63.5, "%"),
        ("temperature", 21.4, "°C"),
    ]

    out = tmp_path / "readings.csv"
    result = sensing("data", "download", "--hub", running_hub.url, "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"✓ 2 readings written to {out} (licence: ODbL-1.0)."
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted((r["device"], r["quantity"], float(r["value"])) for r in rows) == [
        (device["id"], "humidity", 63.5),
        (device["id"], "temperature", 21.4),
    ]


def test_firmware_under_micropython_publishes_to_the_hub(hub_and_broker, micropython, tmp_path):
    running_hub = hub_and_broker
    device = register(running_hub)
    state = tmp_path / "device-state"
    state.mkdir()
    config = {
        "device_id": device["id"],
        "secret": device["secret"],
        "broker_port": running_hub.mqtt_port,
        "interval": 0.2,
        "cycles": 3,
        "drain_seconds": 10,
        "state_dir": str(state),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    # The command docs/firmware.md gives, run from the repository root.
    result = subprocess.run(
        [micropython, "-m", "firmware.main", str(tmp_path / "config.json")],
        env={"MICROPYPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    owner = {"Authorization": f"Bearer {device['owner']}"}
    url = f"{running_hub.url}/api/v1/devices/{device['id']}/readings"
    wait_until(lambda: len(httpx.get(url, headers=owner).json()["readings"]) >= 6, "six readings stored at the hub")
    readings = httpx.get(url, headers=owner).json()["readings"]
    assert sorted({r["seq"] for r in readings}) == [0, 1, 2]
    assert {r["quantity"] for r in readings} == {"temperature", "humidity"}
    assert all(r["transport"] == "mqtt" for r in readings)
    open_rows = httpx.get(f"{running_hub.url}/api/v1/open/readings", params={"device": device["id"]}).json()
    assert len(open_rows["readings"]) == 6


def test_cli_failures_are_one_sentence(running_hub, tmp_path):
    result = sensing("device", "register", "--hub", running_hub.url, "--key", "wrong", "--area", "x",
                     "--sharing", "open", "--collected-by", "me")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "✗ The hub did not accept the key: check it was copied whole, or ask the hub operator for a new one."
    )
    result = sensing("data", "download", "--hub", "http://127.0.0.1:9", "--output", str(tmp_path / "x.csv"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "✗ The hub at http://127.0.0.1:9 is not reachable: is it running, and is the address right?"
    )
