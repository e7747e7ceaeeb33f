"""Standalone ingest workers: `python -m hub.ingest` (and `sensing hub ingest`).

Applies the migrations, then subscribes to SENSING_BROKER_URL and stores readings until SIGTERM or SIGINT.
It needs a broker of your own: the embedded broker lets in only the ingest of the hub it runs in.

With a broker of your own, SENSING_INGEST_WORKERS=N runs N worker processes, members of one shared subscription
(SENSING_INGEST_SHARE_GROUP), so the broker splits the messages between them: one Python MQTT client spends most
of a core receiving, leaving little for storing; two processes on two cores keep up with the broker. Each worker
has its own persistent session, `{SENSING_MQTT_CLIENT_ID}-{n}`: keep N steady, because the broker keeps handing a
share of the messages to the session of a worker that no longer runs, until a worker with its id comes back.
"""

import logging
import multiprocessing
import signal
import sys
import threading

from pydantic import ValidationError

from hub.db import make_engine, migrate
from hub.ingest.mqtt import MqttIngest
from hub.settings import Settings

log = logging.getLogger("hub.ingest")


def _settings() -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:  # one sentence per problem, as the CLI prints them
        for error in exc.errors():
            print(f"sensing ingest: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_worker(settings: Settings, client_id: str, share_group: str) -> None:
    """One worker: subscribe and store until told to stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = _stop_on_signals()
    assert settings.broker_url, "main() refuses to start without a broker URL"
    engine = make_engine(settings.sqlalchemy_url)
    ingest = MqttIngest(settings, engine, settings.broker_url, client_id=client_id, share_group=share_group).start()
    log.info("ingest worker %s storing readings from %s; stop with Ctrl-C or SIGTERM", client_id, ingest.broker_url)
    try:
        stop.wait()
    finally:
        ingest.stop()
        engine.dispose()
        log.info("ingest worker %s stopped: %s", client_id, ingest.counts())


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings()
    if settings is None:
        return 2
    if not settings.broker_url:
        print("sensing ingest: a standalone worker needs SENSING_BROKER_URL, a broker of your own "
              "(the embedded broker lets in only the hub's own ingest)", file=sys.stderr)
        return 2
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)  # once, before any worker starts
    engine.dispose()
    share_group = settings.ingest_share_group
    if settings.ingest_workers == 1:
        run_worker(settings, settings.mqtt_client_id, share_group)
        return 0
    stop = _stop_on_signals()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=run_worker,
            args=(settings, f"{settings.mqtt_client_id}-{n}", share_group),
            name=f"ingest-{n}",
        )
        for n in range(1, settings.ingest_workers + 1)
    ]
    for worker in workers:
        worker.start()
    while not stop.wait(1):
        if any(not w.is_alive() for w in workers):
            log.error("an ingest worker exited: stopping the others")
            break
    for worker in workers:
        if worker.is_alive():
            worker.terminate()  # SIGTERM: the worker stores and acknowledges what it holds
    for worker in workers:
        worker.join(30)
    return 0 if stop.is_set() else 1
