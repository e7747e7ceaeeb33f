"""The embedded MQTT broker: amqtt inside the hub's event loop, so a small hub needs no Mosquitto.

    broker = EmbeddedBroker("127.0.0.1", 1883)
    await broker.start()     # port busy? a warning, and the next free one of the following 20
    broker.url               # "mqtt://127.0.0.1:1884"
    await broker.stop()

Persistent sessions and QoS 1 work as on Mosquitto: a client that connects with clean_session off gets the
messages published while it was away. Anyone may connect for now; per-device credentials come later.

Unlike Mosquitto, amqtt forgets a message delivered to a subscriber that has not acknowledged it within 5 s or
that disconnects before acknowledging: it is not redelivered. Ingest keeps what it received until committed, and
the broker lives in the hub's process (a crash of the hub loses its queues either way), so this costs nothing
the embedded broker could have kept; a hub that must survive crashes without loss uses Mosquitto.
"""

import logging
import socket
from dataclasses import dataclass

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger("hub.broker")

PORTS_TO_TRY = 21  # the configured port, then the next 20


class LetEveryoneIn(BaseAuthPlugin):
    """Accept every client as a named one. amqtt's own anonymous plugin marks sessions anonymous, and it drops an
    anonymous session when the client disconnects, with the messages queued for it: no persistent sessions."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        return True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    def __init__(self, host: str, port: int):
        self.host = host
        self.wanted_port = port
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
            "plugins": {f"{__name__}.LetEveryoneIn": {}},
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
