"""Fixtures for the firmware tests: the real MicroPython unix port and real Mosquitto brokers."""

import pytest

from tests.firmware.broker import Broker, find_mosquitto
from tests.firmware.support import micropython_or_skip, require


@pytest.fixture(scope="session")
def micropython_bin():
    """Path of the MicroPython unix port binary."""
    return micropython_or_skip()


@pytest.fixture(scope="session")
def mosquitto_bin():
    """Path of the Mosquitto broker binary."""
    return require(find_mosquitto(), "the Mosquitto broker (`mosquitto`)")


@pytest.fixture
def start_broker(mosquitto_bin, tmp_path):
    """Factory: start_broker(**options) starts a Mosquitto on a free port; all are stopped after the test."""
    started = []

    def start(**options):
        broker = Broker(tmp_path / f"broker{len(started)}", binary=mosquitto_bin, **options)
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.stop()
