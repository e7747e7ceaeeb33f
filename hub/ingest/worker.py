"""A standalone ingest worker: `python -m hub.ingest` (and `sensing hub ingest`).

Applies the migrations, then subscribes to SENSING_BROKER_URL and stores readings until SIGTERM or SIGINT.
Without a broker URL it joins the embedded broker of a hub running on this machine (SENSING_EMBEDDED_BROKER_*).
Several workers may run at once against Mosquitto if each has its own SENSING_MQTT_CLIENT_ID (MQTT 5 shared
subscriptions, for splitting the load rather than copying it, come later).
"""

import logging
import signal
import sys
import threading

from pydantic import ValidationError

from hub.db import make_engine, migrate
from hub.ingest.mqtt import MqttIngest
from hub.settings import Settings

log = logging.getLogger("hub.ingest")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:  # one sentence per problem, as the CLI prints them
        for error in exc.errors():
            print(f"sensing ingest: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    broker_url = settings.broker_url or f"mqtt://{settings.embedded_broker_host}:{settings.embedded_broker_port}"
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ingest = MqttIngest(settings, engine, broker_url).start()
    log.info("ingest worker storing readings from %s; stop with Ctrl-C or SIGTERM", broker_url)
    try:
        stop.wait()
    finally:
        ingest.stop()
        engine.dispose()
        log.info("ingest worker stopped: %s", ingest.counts())
    return 0


if __name__ == "__main__":
    sys.exit(main())
