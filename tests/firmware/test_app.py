"""The firmware app under the real MicroPython unix port, publishing to a real Mosquitto."""

import json
import os
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from firmware import codec
from firmware.buffer import Buffer
from tests.firmware.support import REPO
from tests.services import free_port

DEVICE = "dev-1"
SECRET = "s3cret-dev-1"
USERS = {DEVICE: SECRET, "hub": "hub-secret"}
# The device and the test's subscriber log in; nobody else may.
with_passwords = pytest.mark.parametrize("fresh_mosquitto", [{"passwords": USERS}], indirect=True,
                                         ids=["passwords"])


class Subscriber:
    """A paho client that records every message under the device's prefix."""

    def __init__(self, broker, client_id="hub-test", clean_session=True):
        self.messages = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session)
        self.client.username_pw_set("hub", USERS["hub"])
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"sensing/v1/{DEVICE}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def records(self):
        with self.lock:
            return [codec.decode_json(p) for t, p, _ in self.messages if t.endswith("/up")]

    def readings(self):
        return [r for recs, _ in self.records() for r in recs]

    def wait_for_records(self, count, timeout=20):
        """The decoded messages, once they hold `count` readings (or after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.readings()) < count:
            time.sleep(0.05)
        return self.records()

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def online(dropped=0, untimed=0, faults=(), message=""):
    """The status the device publishes while it runs, as the exact bytes."""
    return json.dumps({"dropped": dropped, "faults": list(faults), "message": message, "state": "online",
                       "untimed": untimed}, ensure_ascii=False).encode()


def write_config(tmp_path, broker_port, **overrides):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    config = {"device_id": DEVICE, "secret": SECRET, "broker_port": broker_port, "interval": 0.05,
              "cycles": 5, "state_dir": str(state), "seed": 7, "timeout": 5,
              "backoff_initial": 0.1, "backoff_max": 0.4, "backoff_jitter": 0, "drain_seconds": 0}
    config.update(overrides)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def start_app(micropython, config_path):
    env = dict(os.environ, MICROPYPATH=str(REPO))
    return subprocess.Popen([micropython, "-m", "firmware.main", str(config_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_app(micropython, config_path, timeout=60):
    proc = start_app(micropython, config_path)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def assert_readings(decoded, seqs):
    """The messages carry exactly these seqs, in order, whether one reading a message or batched."""
    assert [errors for _, errors in decoded] == [[]] * len(decoded)
    records = [r for recs, _ in decoded for r in recs]
    assert [r["seq"] for r in records] == list(seqs)
    for r in records:
        good, bad = codec.validate(r["v"])
        assert bad == [] and sorted(good) == ["humidity", "temperature"]
        assert abs(r["t"] - time.time()) < 120
    return records


@with_passwords
def test_app_publishes_numbered_readings_and_status(micropython, fresh_mosquitto, tmp_path):
    broker = fresh_mosquitto
    sub = Subscriber(broker)
    out = run_app(micropython, write_config(tmp_path, broker.port))
    assert out == ""
    decoded = sub.wait_for_records(5)
    assert [len(recs) for recs, _ in decoded] == [1] * 5  # sent as taken: one reading a message
    records = assert_readings(decoded, range(5))
    # seed 7 gives this series under CPython too: the emulated sensor is deterministic.
    assert [r["v"] for r in records][:3] == [{"temperature": 19.0, "humidity": 54.5},
                                             {"temperature": 19.0, "humidity": 55.0},
                                             {"temperature": 19.2, "humidity": 54.0}]
    time.sleep(0.2)
    sub.stop()
    status = [(p, retain) for t, p, retain in sub.messages if t.endswith("/status")]
    assert status == [(online(), False), (b'{"state": "offline"}', False)]
    assert (tmp_path / "state" / "seq").read_text() == "5\n"
    assert len(Buffer(str(tmp_path / "state"))) == 0  # every reading acknowledged, so none kept


@with_passwords
def test_seq_survives_a_restart(micropython, fresh_mosquitto, tmp_path):
    broker = fresh_mosquitto
    sub = Subscriber(broker)
    config = write_config(tmp_path, broker.port, cycles=3)
    run_app(micropython, config)
    run_app(micropython, config)
    assert_readings(sub.wait_for_records(6), range(6))
    sub.stop()


# A persistent session queues the messages for the subscriber whenever they come, so the test cannot
# miss the first ones by subscribing too late.
@pytest.mark.parametrize("fresh_mosquitto", [{"passwords": USERS, "persistence": True}], indirect=True,
                         ids=["passwords-persistence"])
def test_readings_taken_while_the_broker_is_down_arrive_once_with_their_seq(micropython, fresh_mosquitto,
                                                                            tmp_path):
    broker = fresh_mosquitto
    Subscriber(broker, client_id="hub-persistent", clean_session=False).stop()
    broker.stop()
    app = start_app(micropython, write_config(tmp_path, broker.port, cycles=12, interval=0.1, drain_seconds=20))
    time.sleep(0.6)  # a few readings are taken and fail to send
    broker.start()  # the same port and persistence file
    out, _ = app.communicate(timeout=60)
    assert app.returncode == 0, out
    sub = Subscriber(broker, client_id="hub-persistent", clean_session=False)
    decoded = sub.wait_for_records(12)
    assert_readings(decoded, range(12))
    time.sleep(0.3)  # anything duplicated would arrive by now
    assert len(sub.readings()) == 12
    # The readings kept while the broker was down went in batches: fewer messages than readings.
    assert max(len(recs) for recs, _ in decoded) > 1 and len(sub.records()) < 12
    sub.stop()
    assert f"cannot reach the broker at 127.0.0.1:{broker.port}" in out
    assert "reading(s) kept, retrying in 0.1 s" in out


MQTT_PROBE = """
import sys
from firmware import mqtt
c = mqtt.MQTTClient(sys.argv[1], "127.0.0.1", int(sys.argv[2]), user=sys.argv[1], password=sys.argv[3],
                    timeout=5)
try:
    c.connect()
    print("connected")
    c.disconnect()
except mqtt.MQTTRefused as e:
    print("refused", e.code, e)
except mqtt.MQTTError as e:
    print("error", e)
"""


def probe(micropython, tmp_path, *args):
    script = tmp_path / "probe.py"
    script.write_text(MQTT_PROBE)
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(script), *map(str, args)], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@with_passwords
def test_mqtt_client_says_why_the_broker_refused(micropython, fresh_mosquitto, tmp_path):
    broker = fresh_mosquitto
    assert probe(micropython, tmp_path, DEVICE, broker.port, SECRET) == "connected"
    # Mosquitto answers a wrong password with MQTT 3.1.1 return code 5.
    assert probe(micropython, tmp_path, DEVICE, broker.port, "wrong") == (
        "refused 5 the broker refused the connection: not authorised (return code 5)")


def test_mqtt_client_says_when_nothing_listens(micropython, tmp_path):
    port = free_port()  # nothing listens on it
    assert probe(micropython, tmp_path, DEVICE, port, SECRET) == (
        f"error cannot reach the broker at 127.0.0.1:{port}: [Errno 111] ECONNREFUSED")


@with_passwords
def test_app_runs_from_flat_files_as_on_a_board(micropython, fresh_mosquitto, tmp_path):
    # A board holds the firmware files at its root, no `firmware` package; main.py runs as __main__.
    board = tmp_path / "board"
    shutil.copytree(REPO / "firmware", board, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    shutil.copy(REPO / "firmware" / "sensors" / "__init__.py", board / "sensors" / "__init__.py")
    broker = fresh_mosquitto
    sub = Subscriber(broker)
    config = write_config(tmp_path, broker.port, cycles=2)
    out = subprocess.run([micropython, "main.py", str(config)], cwd=board, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    assert_readings(sub.wait_for_records(2), range(2))
    sub.stop()


def test_backoff_doubles_to_its_cap_with_jitter(micropython, tmp_path):
    script = tmp_path / "backoff.py"
    script.write_text("""
from firmware.app import Backoff, seconds
draws = iter([0.0, 1.0, 0.5, 0.25, 0.0, 0.999, 0.0])
b = Backoff(1, 8, 0.5, rand=lambda: next(draws))
waits = [b.fail() for _ in range(6)]
b.reset()
print(waits, b.fail(), [seconds(w) for w in waits])
""")
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # Base waits 1, 2, 4, 8, 8, 8; each shortened by draw × 0.5 of itself. After a success, back to 1.
    assert out.stdout.strip() == (
        "[1.0, 1.0, 3.0, 7.0, 8.0, 4.004] 1.0 ['1', '1', '3', '7', '8', '4']")
