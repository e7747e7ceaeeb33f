"""The embedded MQTT broker: amqtt inside the hub's event loop, so a small hub needs no Mosquitto.

    broker = EmbeddedBroker("127.0.0.1", 1883, Logins(engine, "sensing-hub", hub_password))
    await broker.start()     # port busy? a warning, and the next free one of the following 20
    broker.url               # "mqtt://127.0.0.1:1884"
    await broker.stop()

Persistent sessions and QoS 1 work as on Mosquitto: a client that connects with clean_session off gets the
messages published while it was away. Only registered devices (user: the device id, password: its secret) and
the hub's own ingest may connect, and each may use only its own topics (hub.broker_access): a message published
to another device's topic is acknowledged and dropped, as Mosquitto does.

amqtt handles a CONNECT's client id before it asks who is connecting: a client that fails to log in with the
client id of a connected client still disconnects it. It cannot publish or read anything, and the hub's ingest
uses a client id made afresh at every start (hub.services), so no stranger can know it.

Unlike Mosquitto, amqtt forgets a message delivered to a subscriber that has not acknowledged it within 5 s or
that disconnects before acknowledging: it is not redelivered. Ingest keeps what it received until committed, and
the broker lives in the hub's process (a crash of the hub loses its queues either way), so this costs nothing
the embedded broker could have kept; a hub that must survive crashes without loss uses Mosquitto.
"""

import logging
import socket
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.broker_access import Logins, may

log = logging.getLogger("hub.broker")

PORTS_TO_TRY = 21  # the configured port, then the next 20


class DeviceLogin(BaseAuthPlugin):
    """Let in registered devices and the hub's ingest, each with its own password; refuse everyone else.

    It replaces amqtt's anonymous plugin, which marks sessions anonymous and drops an anonymous session when its
    client disconnects, with the messages queued for it: no persistent sessions. These sessions are named ones."""

    @dataclass
    class Config:
        logins: Any  # hub.broker_access.Logins

    async def authenticate(self, *, session: Session) -> bool:
        logins: Logins = self.config.logins
        reason = await logins.refusal(session.username, session.password)
        if reason is None and session.will_flag and not may(
            session.username, "write", session.will_topic or "", hub_user=logins.hub_user
        ):
            reason = f"its last will is for {session.will_topic}, which it may not publish to"
        if reason is not None:
            log.warning("refused an MQTT client (client id %r, user %r): %s", session.client_id, session.username,
                        reason)
            return False
        return True


class DeviceTopics(BaseTopicPlugin):
    """Each client publishes, subscribes and receives only on the topics hub.broker_access grants its user."""

    @dataclass
    class Config:
        logins: Any  # hub.broker_access.Logins

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if session is None or topic is None:
            return False
        access = "write" if action == Action.PUBLISH else "read"  # read: to subscribe and to receive
        return may(session.username, access, topic, hub_user=self.config.logins.hub_user)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    def __init__(self, host: str, port: int, logins: Logins):
        self.host = host
        self.wanted_port = port
        self.logins = logins
        self.port: int | None = None
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the embedded broker has not started")
        return f"mqtt://{self.host}:{self.port}"

    def _config(self, port: int) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
            "plugins": {f"{__name__}.DeviceLogin": {"logins": self.logins},
                        f"{__name__}.DeviceTopics": {"logins": self.logins}},
        }

    async def start(self) -> "EmbeddedBroker":
        """Listen on the configured port, or on the next free one when it is taken (a Mosquitto on 1883)."""
        for port in range(self.wanted_port, self.wanted_port + PORTS_TO_TRY):
            if not port_is_free(self.host, port):
                continue
            broker = Broker(self._config(port))
            try:
                await broker.start()
            except Exception as exc:  # taken between the check and the bind
                log.debug("the embedded broker could not listen on %s:%d: %s", self.host, port, exc)
                continue
            self._broker, self.port = broker, port
            if port != self.wanted_port:
                log.warning("port %d on %s is in use (another MQTT broker?): the embedded broker listens on %d",
                            self.wanted_port, self.host, port)
            log.info("embedded MQTT broker listening on %s", self.url)
            return self
        last = self.wanted_port + PORTS_TO_TRY - 1
        raise OSError(f"the embedded MQTT broker found no free port on {self.host} from {self.wanted_port} to {last}")

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
