"""MQTT ingest: subscribe to every device's uplink and status, store what arrives, lose nothing if the hub crashes.

    ingest = MqttIngest(settings, engine, "mqtt://127.0.0.1:1883")   # or mqtts://host:8883 for TLS
    ingest.start(); ingest.wait_ready(10)
    ...
    ingest.stop()

QoS 1 on a persistent session (a fixed client id; MQTT 5 with a session expiry, or MQTT 3.1.1 with clean_session off
for the embedded broker, which speaks only that), and each message is acknowledged
only once its readings are committed: a message the hub had not stored when it died is redelivered when it comes
back, and storing it twice is a no-op. paho's network thread only queues messages; one worker thread stores them
in batches, retries (with backoff, keeping the batch and its acknowledgements) while the database is away, and
acknowledges. paho reconnects by itself when the broker goes away and comes back.

Readings arrive on `sensing/v1/+/up`, shared between the workers of a share group. Statuses, on the retained
`sensing/v1/+/status`, are never shared: a shared subscription gets no retained messages, and every worker keeping
each (rare) status costs little; the store keeps the last of each device (hub.ingest.store).

A batch the database refuses the same way three times (a constraint, not a lost connection or a lock) is split
into its messages; a message refused on its own is recorded as a rejection and acknowledged, so that one message
cannot stop ingest for every device.
"""

import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from hub.ingest.pipeline import Batch, Message, Rejected, rejection_row
from hub.ingest.store import ingest, lookup, save
from hub.models import Transport
from hub.settings import Settings
from hub.timeutil import utcnow

log = logging.getLogger("hub.ingest")

TOPIC = "sensing/v1/+/up"
STATUS_TOPIC = "sensing/v1/+/status"
KEEPALIVE = 30
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps an absent worker's session and its messages (MQTT 5)
RETRY_FIRST, RETRY_MOST = 0.1, 5.0  # seconds between attempts to store a batch while the database is away
REFUSALS_BEFORE_GIVING_UP = 3  # the same batch refused (a constraint, a bad value): not the database being away


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://[user:password@]host[:port] (port 1883) or mqtts://… (TLS, port 8883) -> BrokerAddress."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"the broker URL '{url}' is not of the form mqtt[s]://[user:password@]host[:port]")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Checks the broker's certificate and name against the CA in `ca_file`, or the system's CAs."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def untrusted(address: BrokerAddress, context: ssl.SSLContext, timeout: float = 5.0) -> str | None:
    """Why the broker's certificate fails the check, or None: it passes, or the broker cannot be reached at all.
    paho keeps the reason a TLS connection failed to itself."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=address.host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except OSError:
        return None


def without_password(url: str) -> str:
    """The broker URL to show in logs: mqtt://user:***@host:port."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}").geturl()


def subscription(share_group: str) -> list[str]:
    """The topic filters to subscribe to: the uplinks shared between the workers of a group (or plain), and the
    statuses."""
    return [f"$share/{share_group}/{TOPIC}" if share_group else TOPIC, STATUS_TOPIC]


def device_of(topic: str) -> tuple[str | None, bool]:
    """The device id in `sensing/v1/{device}/up` or `.../status`, and whether it is the status."""
    parts = topic.split("/")
    device = parts[2] if len(parts) == 4 and parts[2] else None
    return device, len(parts) == 4 and parts[3] == "status"


@dataclass
class Counters:
    """What the worker thread did; how many messages arrived is counted apart (`MqttIngest._received`), by the
    network thread alone and without a lock, because it is counted once per message."""

    committed: int = 0  # messages whose readings and rejections are committed (and so acknowledged)
    stored: int = 0  # readings newly stored
    duplicates: int = 0  # readings already held (a redelivered message)
    rejected: int = 0  # rejection rows recorded
    statuses: int = 0  # device statuses taken (one a device may leave out, as the store holds it already)
    db_errors: int = 0  # failed attempts to store a batch (each retried)
    connects: int = 0  # successful connections to the broker


@dataclass(frozen=True)
class _Delivery:
    mid: int
    qos: int
    message: Message


class MqttIngest:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        broker_url: str,
        *,
        client_id: str | None = None,
        share_group: str = "",
        mqtt5: bool = True,
        credentials: tuple[str, str] | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self.broker_url = without_password(broker_url)  # as logged
        self.address = parse_broker_url(broker_url)
        if credentials is not None:  # (user, password) instead of any in the URL
            self.address = replace(self.address, username=credentials[0], password=credentials[1])
        self.client_id = client_id or settings.mqtt_client_id
        self.topics = subscription(share_group)
        self.mqtt5 = mqtt5
        self.tls = tls_context(settings.broker_ca_file) if self.address.tls else None
        self.ready = threading.Event()  # subscribed on the current connection
        self._quiet = True  # nothing has arrived on this connection yet
        self._counters = Counters()
        self._received = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Delivery] = queue.SimpleQueue()  # C-implemented: the hot path
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        if self.mqtt5:
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
        else:
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                clean_session=False,  # the broker keeps our subscription and unacknowledged messages while away
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if self.address.username is not None:
            client.username_pw_set(self.address.username, self.address.password)
        if self.tls is not None:
            client.tls_set_context(self.tls)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> "MqttIngest":
        """Connect (retrying until the broker is there) and start storing. Returns at once."""
        self._worker.start()
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY  # keep our session and messages while we are away
            # How many unacknowledged messages the broker may send us. MQTT 3.1.1 has no way to say: Mosquitto
            # then allows its max_inflight_messages (20 by default), and a batch could never be larger.
            properties.ReceiveMaximum = min(65535, 2 * self.settings.ingest_batch_size)
            self.client.connect_async(
                self.address.host, self.address.port, keepalive=KEEPALIVE, clean_start=False, properties=properties
            )
        else:
            self.client.connect_async(self.address.host, self.address.port, keepalive=KEEPALIVE)
        self.client.loop_start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        """Wait until subscribed; False if that took longer than `timeout` seconds."""
        return self.ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Store and acknowledge what has arrived, then disconnect. Whatever is left unstored (the database is
        away) stays unacknowledged, so the broker delivers it again next time."""
        self._stopping.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        self.ready.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"received": self._received} | asdict(self._counters)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self._counters, name, getattr(self._counters, name) + delta)

    # --- paho callbacks (paho's network thread: quick, never touching the database) -----------------------------

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("the broker at %s refused the connection: %s", self.broker_url, reason_code)
            return
        self._count(connects=1)
        self._quiet = True
        log.info("connected to %s as %s (session present: %s)", self.broker_url, self.client_id,
                 flags.session_present)
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:  # type: ignore[no-untyped-def]
        if any(code.is_failure for code in reason_codes):
            log.error("the broker refused the subscription to %s: %s", " and ".join(self.topics), reason_codes)
            return
        log.info("subscribed to %s", " and ".join(self.topics))
        self.ready.set()

    def _on_connect_fail(self, _client, _userdata) -> None:  # type: ignore[no-untyped-def]
        why = untrusted(self.address, self.tls) if self.tls is not None else None
        if why:
            log.error("cannot trust the broker at %s: %s (checked against %s); retrying",
                      self.broker_url, why, self.settings.broker_ca_file or "the system's CA certificates")
        else:
            log.warning("cannot reach the broker at %s: retrying", self.broker_url)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:  # type: ignore[no-untyped-def]
        self.ready.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker at %s (%s): reconnecting", self.broker_url, reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        device, status = device_of(msg.topic)
        message = Message(Transport.mqtt, device, bytes(msg.payload), utcnow(), status=status, retained=msg.retain)
        self._queue.put(_Delivery(msg.mid, msg.qos, message))
        self._received += 1
        if self._quiet:
            self._quiet = False
            log.info("messages are arriving from %s", self.broker_url)

    # --- the worker -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            deliveries = self._collect()
            if deliveries:
                self._commit(deliveries)
            elif self._stopping.is_set():
                return

    def _collect(self) -> list[_Delivery]:
        """The next batch: up to ingest_batch_size messages, waiting at most ingest_batch_seconds after the first
        (and no longer once stopping)."""
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.ingest_batch_seconds
        while len(batch) < self.settings.ingest_batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            wait = deadline - time.monotonic()
            if wait <= 0 or self._stopping.is_set():
                break
            try:  # wake at least every 0.1 s to notice a stop
                batch.append(self._queue.get(timeout=min(wait, 0.1)))
            except queue.Empty:
                continue
        return batch

    def _commit(self, deliveries: list[_Delivery]) -> None:
        messages = [d.message for d in deliveries]
        try:
            result = self._store(messages)
        except _Refused as refused:
            if len(deliveries) > 1:  # find the message the database refuses, and store the others
                for delivery in deliveries:
                    self._commit([delivery])
                return
            result = self._give_up(deliveries[0].message, refused.__cause__)
        if result is None:
            log.warning("stopping with %d messages unstored: the broker will deliver them again", len(messages))
            return
        batch, stored = result
        for delivery in deliveries:
            self.client.ack(delivery.mid, delivery.qos)
        self._count(committed=len(deliveries), stored=stored, duplicates=len(batch.readings) - stored,
                    rejected=len(batch.rejections), statuses=len(batch.statuses))

    def _store(self, messages: list[Message], store: Callable[[], tuple[Batch, int]] | None = None
               ) -> tuple[Batch, int] | None:
        """Store, retrying with backoff while the database is away. None when stopping first; raises _Refused when
        the database keeps refusing the batch itself (not a lost connection or a lock: the same error each time)."""
        store = store or (lambda: ingest(self.engine, messages, self.settings))
        delay, refusals = RETRY_FIRST, 0
        while True:
            try:
                return store()
            except Exception as exc:  # keep the batch and acknowledge nothing
                self._count(db_errors=1)
                if not _transient(exc):
                    refusals += 1
                    if refusals >= REFUSALS_BEFORE_GIVING_UP:
                        raise _Refused() from exc
                log.warning("could not store %d messages (%s): retrying in %.1f s",
                            len(messages), _first_line(exc), delay)
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, RETRY_MOST)

    def _give_up(self, message: Message, exc: BaseException | None) -> tuple[Batch, int] | None:
        """Record a message the database refuses every time as a rejection, so one message cannot stop ingest."""
        reason = f"the hub could not store this message: {_first_line(exc) if exc else 'unknown error'}"
        log.error("giving up on a message from %s: %s", message.device, reason)

        def record() -> tuple[Batch, int]:
            with self.engine.begin() as conn:  # with the device, when known, so its owner sees the rejection too
                stamp = lookup(conn, [message.device]).get(message.device) if message.device else None
                batch = Batch(rejections=[rejection_row(message, stamp, Rejected(None, None, None, reason))])
                return batch, save(conn, batch)

        try:
            return self._store([message], record)
        except _Refused:
            return Batch(), 0  # not even the rejection can be stored: logged above, acknowledged all the same


class _Refused(Exception):
    """The database refused a batch the same way several times."""


def _transient(exc: BaseException) -> bool:
    """A lost connection, a lock, a database that is down: worth retrying as long as it takes."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig  # the database's own words, without SQLAlchemy's "(module.Class)" prefix
    return (str(exc).splitlines() or [type(exc).__name__])[0]
