"""The hub's background services: the embedded MQTT broker (when no broker URL is set) and MQTT ingest."""

import asyncio
import secrets

from sqlalchemy import Engine

from hub.broker import EmbeddedBroker
from hub.broker_access import Logins
from hub.ingest.mqtt import MqttIngest
from hub.settings import Settings

HUB_USER = "sensing-hub"  # the ingest's user on the embedded broker (device ids are air-… and damp-…)


class HubServices:
    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.broker: EmbeddedBroker | None = None
        self.ingest: MqttIngest | None = None
        self.broker_url: str | None = settings.broker_url or None

    async def start(self) -> None:
        credentials = None  # a broker of your own: those in SENSING_BROKER_URL
        client_id = self.settings.mqtt_client_id
        if not self.broker_url:
            # The ingest's password on the embedded broker lives only in this process: made now, kept nowhere.
            credentials = (HUB_USER, secrets.token_urlsafe(32))
            # amqtt acts on a CONNECT's client id before it checks the login, so a stranger who knew the ingest's
            # id could kick it off (and, with a clean session, wipe its queue). The embedded broker's sessions
            # end with the hub anyway, so the id can be unguessable and new at every start.
            client_id = f"{client_id}-{secrets.token_hex(8)}"
            self.broker = await EmbeddedBroker(
                self.settings.embedded_broker_host, self.settings.embedded_broker_port,
                Logins(self.engine, *credentials),
            ).start()
            self.broker_url = self.broker.url
        # The embedded broker (amqtt) speaks only MQTT 3.1.1, without shared subscriptions. With a broker of its own
        # the hub speaks MQTT 5 and joins the share group, so `sensing hub ingest` workers beside it split the load.
        external = self.broker is None
        share_group = self.settings.ingest_share_group if external else ""
        self.ingest = MqttIngest(
            self.settings, self.engine, self.broker_url, client_id=client_id, share_group=share_group,
            mqtt5=external, credentials=credentials,
        ).start()

    async def stop(self) -> None:
        if self.ingest is not None:
            # Off the event loop: stopping waits for the last batch, and the embedded broker runs on this loop.
            await asyncio.to_thread(self.ingest.stop)
            self.ingest = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
