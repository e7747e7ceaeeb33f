"""A real hub process, started the way `make run` starts it (`sensing hub serve`), on free ports.

For tests and benchmarks; the fixtures `running_hub` and `facilitator_key` (tests/conftest.py) use it.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import free_port

SENSING = str(Path(sys.executable).parent / "sensing")


@dataclass
class RunningHub:
    url: str
    mqtt_port: int
    operator_key: str
    data_dir: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def start_hub(
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
    mqtt_port: int | None = None,
    http_port: int | None = None,
) -> tuple[subprocess.Popen, RunningHub]:
    """`sensing hub serve` on free ports; with `mqtt_port`, the broker given in extra_env listens there; with
    `http_port`, on that port (a hub started again where it was)."""
    http_port, mqtt_port = http_port or free_port(), mqtt_port or free_port()
    data_dir = tmp_path / "hub-data"
    env = {
        **os.environ,
        "SENSING_DATA_DIR": str(data_dir),
        "SENSING_PORT": str(http_port),
        "SENSING_EMBEDDED_BROKER_PORT": str(mqtt_port),
        "SENSING_ENVIRONMENT": "development",
        "SENSING_OPERATOR_KEY": "",
        "SENSING_BROKER_URL": "",
        "DATABASE_URL": "",
        **(extra_env or {}),
    }
    output = tmp_path / "hub.log"
    proc = subprocess.Popen(
        [SENSING, "hub", "serve"], env=env, stdout=output.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path
    )
    hub = RunningHub(f"http://127.0.0.1:{http_port}", mqtt_port, "", data_dir, output)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited with {proc.returncode}:\n{hub.log()}")
        try:
            if httpx.get(f"{hub.url}/api/v1/consent/texts", timeout=1).status_code == 200 and "running" in hub.log():
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"the hub did not start within 30 s:\n{hub.log()}")
    hub.operator_key = (data_dir / "operator-key").read_text().strip()
    return proc, hub


def stop_hub(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
