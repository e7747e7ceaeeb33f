"""The test-service layer itself, against the real Mosquitto, PostgreSQL and MicroPython."""

import queue
import subprocess
import time

import paho.mqtt.client as mqtt
import psycopg
import pytest
import sqlalchemy as sa

from tests.services import Mosquitto, PostgresDatabase, postgres_admin_url, require

WAIT = 10.0  # seconds; the bound on every wait for the broker


class Peer:
    """A paho v2 client that records what arrives. threaded=False leaves reading to the test: a slow reader."""

    def __init__(self, broker, client_id="", clean_session=True, threaded=True, username=None, password=None):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session, protocol=mqtt.MQTTv311)
        self.threaded = threaded
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, p: self.connacks.put((flags.session_present, rc))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=1)  # a paho retry sleep delays loop_stop
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect(broker.host, broker.port, keepalive=60)
        if threaded:
            self.client.loop_start()
        self.session_present, self.reason = self._next(self.connacks)
        if self.reason.is_failure:
            self.close()  # otherwise the network thread keeps retrying until teardown

    def subscribe(self, topic, qos=1):
        self.client.subscribe(topic, qos=qos)
        codes = self._next(self.subacks)
        assert [code.value for code in codes] == [qos]

    def publish_all(self, topic, payloads, qos=1):
        infos = [self.client.publish(topic, payload, qos=qos) for payload in payloads]
        deadline = time.monotonic() + WAIT * 3
        for info in infos:
            info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            assert info.is_published(), "the broker did not acknowledge every message in time"

    def receive(self, count, wait=WAIT, quiet=None):
        """Up to `count` messages within `wait` seconds, or fewer once nothing has arrived for `quiet` seconds."""
        received = []
        deadline = time.monotonic() + wait
        last_arrival = time.monotonic()
        while len(received) < count and time.monotonic() < deadline:
            if quiet is not None and time.monotonic() - last_arrival > quiet:
                break
            if not self.threaded:
                self.client.loop(timeout=0.05)
            try:
                while len(received) < count:
                    received.append(self.messages.get(timeout=0 if not self.threaded else 0.05))
                    last_arrival = time.monotonic()
            except queue.Empty:
                pass
        return received

    def close(self):
        self.client.disconnect()
        if self.threaded:
            self.client.loop_stop()

    def _next(self, answers):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if not self.threaded:
                self.client.loop(timeout=0.05)
            try:
                return answers.get(timeout=0 if not self.threaded else 0.05)
            except queue.Empty:
                continue
        raise AssertionError(f"no answer from the broker within {WAIT:.0f} s")


@pytest.fixture
def peers():
    """Make MQTT clients that are disconnected at teardown, pass or fail."""
    made = []

    def make(broker, **options):
        made.append(Peer(broker, **options))
        return made[-1]

    yield make
    for peer in made:
        peer.close()


# ------------------------------------------------------------------------------------------------ Mosquitto

def test_mosquitto_round_trips_a_qos1_message(mosquitto, peers):
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    subscriber = peers(mosquitto)
    subscriber.subscribe("services/round-trip")
    peers(mosquitto).publish_all("services/round-trip", [b"21.5"])

    [message] = subscriber.receive(1)
    assert (message.topic, message.payload, message.qos) == ("services/round-trip", b"21.5", 1)


def test_restart_keeps_the_port(fresh_mosquitto, peers):
    port = fresh_mosquitto.port
    fresh_mosquitto.restart()

    assert fresh_mosquitto.port == port
    assert fresh_mosquitto.url == f"mqtt://127.0.0.1:{port}"
    assert fresh_mosquitto.log_text().count(" starting") == 2
    assert peers(fresh_mosquitto).reason == 0


def _leave_a_message_while_away(broker, peers, topic):
    sleeper = peers(broker, client_id="sleeper", clean_session=False)
    sleeper.subscribe(topic)
    sleeper.close()
    publisher = peers(broker)
    publisher.publish_all(topic, [b"while you were away"])
    publisher.close()
    broker.restart()
    return peers(broker, client_id="sleeper", clean_session=False)


@pytest.mark.parametrize("fresh_mosquitto", [{"persistence": True}], indirect=True)
def test_persistent_broker_keeps_a_session_and_its_message_across_restart(fresh_mosquitto, peers):
    sleeper = _leave_a_message_while_away(fresh_mosquitto, peers, "services/persisted")

    assert sleeper.session_present is True
    [message] = sleeper.receive(1)
    assert (message.topic, message.payload, message.qos) == ("services/persisted", b"while you were away", 1)


def test_broker_without_persistence_forgets_sessions_on_restart(fresh_mosquitto, peers):
    sleeper = _leave_a_message_while_away(fresh_mosquitto, peers, "services/forgotten")

    assert sleeper.session_present is False
    assert sleeper.receive(1, wait=0.5) == []


def _burst_to_a_reader_that_is_not_reading(broker, peers, count, quiet=None):
    slow = peers(broker, client_id="slow-reader", threaded=False)
    slow.subscribe("services/burst")
    # Every PUBACK comes back while the reader reads nothing, so the broker has had to queue the rest.
    peers(broker).publish_all("services/burst", [str(n).encode() for n in range(count)])
    return [message.payload for message in slow.receive(count, wait=WAIT * 3, quiet=quiet)]


def test_a_slow_subscriber_gets_every_message_of_a_burst(fresh_mosquitto, peers):
    received = _burst_to_a_reader_that_is_not_reading(fresh_mosquitto, peers, 5000)

    assert received == [str(n).encode() for n in range(5000)]
    assert "being dropped" not in fresh_mosquitto.log_text()


@pytest.mark.parametrize("fresh_mosquitto", [{"max_queued_messages": 1000}], indirect=True)
def test_mosquittos_default_queue_limit_drops_a_burst_silently(fresh_mosquitto, peers):
    # The control for the test above: with Mosquitto's default limit the same burst loses messages.
    received = _burst_to_a_reader_that_is_not_reading(fresh_mosquitto, peers, 5000, quiet=1.0)

    # Mosquitto 2.0 keeps the 20 in flight and queues 1000 more; the other 3,980 vanish, every PUBACK sent.
    assert received == [str(n).encode() for n in range(1020)]
    assert "Outgoing messages are being dropped for client slow-reader" in fresh_mosquitto.log_text()


@pytest.mark.parametrize("fresh_mosquitto", [{"passwords": {"device-1": "s3cret"}}], indirect=True)
def test_password_file_refuses_anonymous_and_wrong_passwords(fresh_mosquitto, peers):
    assert peers(fresh_mosquitto, username="device-1", password="s3cret").reason == 0
    assert peers(fresh_mosquitto, username="device-1", password="wrong").reason == "Not authorized"
    assert peers(fresh_mosquitto).reason == "Not authorized"


def test_a_broker_that_cannot_start_says_why_and_cleans_up():
    broker = Mosquitto(extra_config="no_such_option true")
    expected = '(?s)exited with status .*Unknown configuration variable "no_such_option"'
    try:
        with pytest.raises(RuntimeError, match=expected) as raised:
            broker.start()
        assert not broker.running
        directory = broker.directory
        assert str(directory) in str(raised.value)
    finally:
        broker.close()
    assert not directory.exists()


# ------------------------------------------------------------------------------------------------ PostgreSQL

def test_postgres_url_is_a_usable_database_of_its_own(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS probe (n integer)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (7)"))
            name = conn.execute(sa.text("SELECT current_database()")).scalar()
            assert name == postgres_url.rsplit("/", 1)[1]
            assert conn.execute(sa.text("SELECT sum(n) FROM probe")).scalar() >= 7
    finally:
        engine.dispose()


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_an_empty_database(database_url, attempt):
    # Both attempts create the same table: whichever runs second fails unless the database was emptied.
    engine = sa.create_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE reading (seq integer PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO reading VALUES (:seq)"), {"seq": attempt})
            assert conn.execute(sa.text("SELECT seq FROM reading")).scalars().all() == [attempt]
    finally:
        engine.dispose()  # pooled connections left open on purpose would be ended by the next reset anyway


def test_a_database_is_dropped_even_with_connections_open(postgres_url):
    database = PostgresDatabase(prefix="sensing_dropme")
    database.create()
    lingering = psycopg.connect(database.url.replace("+psycopg", ""))
    try:
        database.drop()
        with psycopg.connect(postgres_admin_url().replace("+psycopg", "")) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database.name]).fetchall()
        assert found == []
    finally:
        lingering.close()


# ------------------------------------------------------------------------------------------------ MicroPython

def test_micropython_runs_code(micropython):
    result = subprocess.run([micropython, "-c", "import sys; print(sys.implementation.name, 6 * 7)"],
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, "micropython 42\n")


# ------------------------------------------------------------------------------------------------ require

def test_require_passes_when_the_service_is_there(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require(True, "unused") is None


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_a_missing_service_skips_outside_ci(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="^mosquitto is not installed$"):
        require(False, "mosquitto is not installed")


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_service_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="^mosquitto is not installed \\(CI=true"):
        require(False, "mosquitto is not installed")
