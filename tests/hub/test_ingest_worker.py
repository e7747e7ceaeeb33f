"""The ingest worker under failure: the database away, the worker killed, the worker stopped.

Real Mosquitto, real SQLite and PostgreSQL, and `python -m hub.ingest` as a real process.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

import hub
from hub.ingest.mqtt import MqttIngest
from hub.ingest.store import READING
from tests.hub.conftest import OPERATOR_KEY
from tests.services import WAIT, publish, wait_until

T = int(time.time()) - 60
REPO = Path(hub.__file__).resolve().parent.parent


def records(seqs: range) -> list[bytes]:
    return [json.dumps({"seq": s, "t": T, "v": {"pm2_5": 5 + s / 10, "pm10": 9 + s / 10}}).encode() for s in seqs]


def stored(engine) -> list[tuple[int, str, int]]:
    """(seq, quantity, how many rows) for every stored reading."""
    query = select(READING.c.seq, READING.c.quantity, func.count()).group_by(READING.c.seq, READING.c.quantity)
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


def once_each(seqs: range) -> list[tuple[int, str, int]]:
    return sorted((s, q, 1) for s in seqs for q in ("pm10", "pm2_5"))


# --- the database away ---------------------------------------------------------------------------------------


def impatient_engine(database_url: str):
    """An engine on the same database that gives up on a lock after 0.2 s instead of waiting."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return create_engine(database_url, connect_args={"timeout": 0.2, "check_same_thread": False})
    return create_engine(database_url, connect_args={"options": "-c lock_timeout=200"})


class TableLock:
    """Another connection holding the reading table (SQLite: the whole database) so no one else can write."""

    def __init__(self, database_url: str):
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            import sqlite3

            self.conn = sqlite3.connect(url.database, isolation_level=None)  # transactions by hand
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            self.conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
            self.conn.execute("LOCK TABLE reading IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_database_error_keeps_the_batch_and_retries_until_it_is_stored(client, register, fresh_mosquitto,
                                                                         hub_settings, database_url):
    reg = register()
    engine = impatient_engine(database_url)
    settings = hub_settings.model_copy(update={"mqtt_client_id": f"test-{uuid.uuid4().hex[:8]}"})
    ingest = MqttIngest(settings, engine, fresh_mosquitto.url).start()
    lock = None
    try:
        assert ingest.wait_ready(WAIT), "ingest did not subscribe"
        lock = TableLock(database_url)
        publish(fresh_mosquitto.url, f"sensing/v1/{reg['device']['public_id']}/up", records(range(1, 4)))
        wait_until(lambda: ingest.counts()["db_errors"] >= 2, "two failed attempts to store")
        assert ingest.counts()["committed"] == 0
        lock.release()
        lock = None
        wait_until(lambda: ingest.counts()["committed"] == 3, "the batch stored once the database is back")
    finally:
        if lock is not None:
            lock.release()
        ingest.stop()
        engine.dispose()
    assert stored(client.app.state.engine) == once_each(range(1, 4))
    assert ingest.counts()["stored"] == 6


def refuse_thirteen(database_url: str, engine) -> str:
    """Make the real database refuse any reading of 13; returns the database's own words for it."""
    with engine.begin() as conn:
        if make_url(database_url).get_backend_name() == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER refuse_13 BEFORE INSERT ON reading WHEN NEW.value = 13 "
                                 "BEGIN SELECT RAISE(ABORT, 'the value 13 is refused'); END")
            return "the value 13 is refused"
        conn.exec_driver_sql("ALTER TABLE reading ADD CONSTRAINT refuse_13 CHECK (value <> 13)")
        return 'new row for relation "reading" violates check constraint "refuse_13"'


def test_a_message_the_database_always_refuses_is_recorded_and_the_rest_stored(client, register, fresh_mosquitto,
                                                                               hub_settings, database_url):
    reg = register()
    engine = client.app.state.engine
    words = refuse_thirteen(database_url, engine)
    settings = hub_settings.model_copy(update={"mqtt_client_id": f"test-{uuid.uuid4().hex[:8]}",
                                               "ingest_batch_seconds": 0.5})
    ingest = MqttIngest(settings, engine, fresh_mosquitto.url).start()
    try:
        assert ingest.wait_ready(WAIT), "ingest did not subscribe"
        payloads = [json.dumps({"seq": s, "t": T, "v": {"co2": v}}).encode() for s, v in ((1, 400), (2, 13), (3, 410))]
        publish(fresh_mosquitto.url, f"sensing/v1/{reg['device']['public_id']}/up", payloads)
        wait_until(lambda: ingest.counts()["committed"] == 3, "every message committed or recorded")
    finally:
        ingest.stop()
    assert stored(engine) == [(1, "co2", 1), (3, "co2", 1)]
    response = client.get(f"/api/v1/devices/{reg['device']['public_id']}/rejections",
                          headers={"Authorization": f"Bearer {reg['owner_token']}"})
    assert response.status_code == 200, response.text
    assert [(r["seq"], r["reason"], r["excerpt"]) for r in response.json()] == [
        (None, f"the hub could not store this message: {words}", f'{{"seq": 2, "t": {T}, "v": {{"co2": 13}}}}')]


# --- the worker as a process -----------------------------------------------------------------------------------


@pytest.fixture
def worker(tmp_path, database_url) -> Iterator[Callable[..., "Worker"]]:
    """Start `python -m hub.ingest` processes; every one still running is killed at teardown."""
    started: list[Worker] = []

    def start(broker_url: str, client_id: str, **env: str) -> Worker:
        started.append(Worker(tmp_path, len(started), database_url, broker_url, client_id, env))
        return started[-1]

    yield start
    for process in started:
        process.kill()


class Worker:
    def __init__(self, tmp_path: Path, number: int, database_url: str, broker_url: str, client_id: str,
                 env: dict[str, str]):
        self.log = tmp_path / f"worker-{number}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": database_url,
            "SENSING_BROKER_URL": broker_url,
            "SENSING_ENVIRONMENT": "test",
            "SENSING_OPERATOR_KEY": OPERATOR_KEY,
            "SENSING_MQTT_CLIENT_ID": client_id,
            "SENSING_DATA_DIR": str(tmp_path / "data"),
            **env,
        }
        with open(self.log, "wb") as out:  # cwd tmp_path: no stray .env file is read
            self.process = subprocess.Popen([sys.executable, "-m", "hub.ingest"], cwd=tmp_path, env=environment,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, words: str) -> None:
        def seen() -> bool:
            assert self.process.poll() is None, f"the worker exited early:\n{self.text()}"
            return words in self.text()

        wait_until(seen, f"the worker logging '{words}'")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=WAIT)


@pytest.mark.parametrize("fresh_mosquitto", [{"persistence": True}], indirect=True)
def test_a_killed_worker_loses_nothing_and_stores_nothing_twice(client, register, fresh_mosquitto, worker):
    reg = register()
    engine = client.app.state.engine
    client_id = f"test-crash-{uuid.uuid4().hex[:8]}"
    # An hour to fill a batch: what arrives stays unstored, so unacknowledged, until the kill.
    first = worker(fresh_mosquitto.url, client_id, SENSING_INGEST_BATCH_SECONDS="3600")
    first.wait_for_line("subscribed to sensing/v1/+/up")

    publish(fresh_mosquitto.url, f"sensing/v1/{reg['device']['public_id']}/up", records(range(60)))
    first.wait_for_line("messages are arriving")
    time.sleep(0.3)  # let the broker hand over as many as it will (20 in flight)
    assert stored(engine) == []
    first.kill()

    second = worker(fresh_mosquitto.url, client_id)
    second.wait_for_line("subscribed to sensing/v1/+/up")
    wait_until(lambda: len(stored(engine)) == 120, "all 60 messages stored after the restart")
    time.sleep(0.3)  # anything redelivered late would show as a second row now
    assert stored(engine) == once_each(range(60))
    assert "(session present: True)" in second.text()
    assert second.terminate() == 0


def test_a_stopped_worker_stores_what_it_holds_before_it_exits(client, register, fresh_mosquitto, worker):
    reg = register()
    engine = client.app.state.engine
    process = worker(fresh_mosquitto.url, f"test-stop-{uuid.uuid4().hex[:8]}", SENSING_INGEST_BATCH_SECONDS="3600")
    process.wait_for_line("subscribed to sensing/v1/+/up")

    publish(fresh_mosquitto.url, f"sensing/v1/{reg['device']['public_id']}/up", records(range(5)))
    process.wait_for_line("messages are arriving")
    time.sleep(0.2)
    assert stored(engine) == []

    assert process.terminate() == 0
    assert stored(engine) == once_each(range(5))
    assert "stopped: {'received': 5, 'committed': 5, 'stored': 10," in process.text()


def test_the_worker_refuses_unsafe_settings_in_one_sentence(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "SENSING_ENVIRONMENT": "production",
                   "SENSING_OPERATOR_KEY": "", "SENSING_BROKER_URL": "mqtt://127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "hub.ingest"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert done.stderr == (
        "sensing ingest: SENSING_OPERATOR_KEY must be set to a strong secret outside development "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')\n")


def test_several_workers_share_the_subscription_and_store_each_message_once(client, register, fresh_mosquitto, worker):
    reg = register()
    engine = client.app.state.engine
    client_id = f"test-share-{uuid.uuid4().hex[:8]}"
    workers = worker(fresh_mosquitto.url, client_id, SENSING_INGEST_WORKERS="2", SENSING_INGEST_SHARE_GROUP="hubs")
    subscribed = "subscribed to $share/hubs/sensing/v1/+/up"
    wait_until(lambda: workers.text().count(subscribed) == 2, "both workers subscribed")

    publish(fresh_mosquitto.url, f"sensing/v1/{reg['device']['public_id']}/up", records(range(200)))
    wait_until(lambda: len(stored(engine)) == 400, "all 200 messages stored")
    assert stored(engine) == once_each(range(200))

    assert workers.terminate() == 0
    committed = {
        line.split(" stopped: ")[0].rsplit(" ", 1)[1]: int(line.split("'committed': ")[1].split(",")[0])
        for line in workers.text().splitlines()
        if " stopped: {" in line
    }
    assert sorted(committed) == [f"{client_id}-1", f"{client_id}-2"]
    assert sum(committed.values()) == 200 and min(committed.values()) > 0  # the broker split the work


def test_several_workers_need_a_share_group(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "SENSING_ENVIRONMENT": "test",
                   "SENSING_OPERATOR_KEY": OPERATOR_KEY, "SENSING_BROKER_URL": "mqtt://127.0.0.1:1",
                   "SENSING_INGEST_WORKERS": "2"}
    done = subprocess.run([sys.executable, "-m", "hub.ingest"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert done.stderr == (
        "sensing ingest: SENSING_INGEST_WORKERS above 1 needs SENSING_INGEST_SHARE_GROUP (e.g. sensing-hub), "
        "or every worker would store every message\n"
    )
