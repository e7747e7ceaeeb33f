"""The hub with either broker, for the end-to-end tests (the hub process itself: tests/hub_process.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_process import RunningHub, start_hub, stop_hub


@pytest.fixture(params=["embedded", "mosquitto"])
def hub_and_broker(request, tmp_path: Path) -> Iterator[RunningHub]:
    """The hub with its embedded broker, or with a Mosquitto of the test's own (SENSING_BROKER_URL)."""
    if request.param == "embedded":
        yield request.getfixturevalue("running_hub")
        return
    broker = request.getfixturevalue("fresh_mosquitto")
    proc, hub = start_hub(tmp_path, {"SENSING_BROKER_URL": broker.url}, mqtt_port=broker.port)
    try:
        yield hub
    finally:
        stop_hub(proc)
