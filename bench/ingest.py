"""Ingest benchmark: readings committed per second by the hub, against what a bare MQTT subscriber receives.

100 simulated devices publish 100,000 readings over MQTT QoS 1 to a Mosquitto of our own. Each subscriber
(a bare paho client that only counts; the hub's ingest as one process; the hub's ingest as two worker processes
in a shared subscription) has a persistent session holding every message before it starts, so each run measures
how fast that subscriber drains the same backlog. The bare client gives the broker-and-client ceiling; the hub
must commit to SQLite at 0.7 × that. Then the idle hub's resident memory (target < 150 MB).

    .venv/bin/python -m bench.ingest [--devices 100] [--readings 100000]
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from hub import consent, devices
from hub.db import make_engine, migrate
from hub.models import AgreementCreate, DeviceCreate
from tests.services import Mosquitto, free_port

SHARE_GROUP = "bench"
START = time.time() - 3600  # measured an hour ago onwards, one second apart per device


def register_devices(url: str, count: int) -> list[str]:
    engine = make_engine(url)
    migrate(engine)
    ids = []
    with Session(engine) as session:
        consent.ensure_bundled_texts(session)
        for i in range(count):
            device = DeviceCreate(
                kind="air", board="ESP32_GENERIC", transport="mqtt", placement="outdoor", area=f"area-{i % 10}"
            )
            agreement = AgreementCreate(
                consent_version="2026-11", sharing="open", collection_method="bench", collected_by="bench"
            )
            ids.append(devices.register(session, device, agreement, "bench").device.public_id)
    engine.dispose()
    return ids


def subscribe_persistently(broker: Mosquitto, client_id: str, topic: str = "sensing/v1/+/up") -> None:
    """Create the subscriber's persistent session, so the broker queues everything published from now on."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    done = threading.Event()
    client.on_subscribe = lambda *a: done.set()
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe(topic, qos=1)
    if not done.wait(10):
        raise RuntimeError("the broker did not confirm the subscription")
    client.disconnect()
    client.loop_stop()


def publish(broker: Mosquitto, device_ids: list[str], total: int) -> float:
    """Each device publishes its share of `total` single-reading records at QoS 1; returns seconds taken."""
    per_device = total // len(device_ids)
    clients = []
    for device_id in device_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{device_id}")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients.append((device_id, client))
    began = time.perf_counter()
    infos = []
    for seq in range(per_device):
        for n, (device_id, client) in enumerate(clients):
            record = {"seq": seq, "t": int(START + seq), "v": {"temperature": round(10 + (n + seq) % 150 / 10, 1)}}
            infos.append(client.publish(f"sensing/v1/{device_id}/up", json.dumps(record), qos=1))
        if len(infos) >= 20_000:  # keep well under paho's 65,535 outstanding messages per client
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    took = time.perf_counter() - began
    for _, client in clients:
        client.disconnect()
        client.loop_stop()
    return took


def bare_subscriber_rate(broker: Mosquitto, client_id: str, total: int) -> float:
    """Messages per second a paho subscriber that does nothing but count receives from its backlog."""
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_client, _userdata, _message) -> None:  # type: ignore[no-untyped-def]
        nonlocal received, first, last
        if received == 0:
            first = time.perf_counter()
        received += 1
        last = time.perf_counter()
        if received >= total:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"the bare subscriber received only {received} of {total}")
    client.disconnect()
    client.loop_stop()
    return (total - 1) / (last - first)


def count_readings(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM reading").fetchone()[0]


def hub_env(db_url: str, broker_url: str | None, data_dir: Path, client_id: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SENSING_BROKER_URL": broker_url or "",
        "SENSING_ENVIRONMENT": "test",
        "SENSING_OPERATOR_KEY": "bench-operator-key-0123456789",
        "SENSING_DATA_DIR": str(data_dir),
        "SENSING_MQTT_CLIENT_ID": client_id,
        **extra,
    }
    return env


def hub_ingest_rate(
    broker: Mosquitto, db_path: Path, client_id: str, total: int, workers: int = 1
) -> tuple[float, int]:
    """Readings per second the hub's ingest workers commit to SQLite while draining the same backlog."""
    extra = {"SENSING_INGEST_WORKERS": str(workers), "SENSING_INGEST_SHARE_GROUP": SHARE_GROUP} if workers > 1 else {}
    env = hub_env(f"sqlite:///{db_path}", broker.url, db_path.parent, client_id, **extra)
    worker = subprocess.Popen([sys.executable, "-m", "hub.ingest"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = last = 0.0
        seen = 0
        deadline = time.monotonic() + 900
        while seen < total and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the ingest worker exited early:\n{worker.stderr.read()}")
            seen = count_readings(db_path)
            now = time.perf_counter()
            if seen and not first:
                first, first_count = now, seen
            last = now
            time.sleep(0.02)
        if seen < total:
            raise RuntimeError(f"the hub stored only {seen} of {total} readings")
        return (seen - first_count) / (last - first), seen
    finally:
        worker.terminate()
        worker.wait(30)


def idle_hub_rss_mb(tmp: Path) -> float:
    env = hub_env("", None, tmp / "idle", "idle-hub")
    env.update({"SENSING_PORT": str(free_port()), "SENSING_EMBEDDED_BROKER_PORT": str(free_port())})
    sensing = Path(sys.executable).parent / "sensing"
    hub = subprocess.Popen([str(sensing), "hub", "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in hub.stdout:  # type: ignore[union-attr]
            if "is running" in line:
                break
        time.sleep(3)  # let start-up allocations settle
        return psutil.Process(hub.pid).memory_info().rss / 1e6
    finally:
        hub.terminate()
        hub.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--readings", type=int, default=100_000)
    args = parser.parse_args()
    total = args.readings - args.readings % args.devices

    # Mosquitto as configured by default but for its queue limit (see tests.services.Mosquitto).
    with tempfile.TemporaryDirectory(prefix="sensing-bench-") as tmp_name, Mosquitto() as broker:
        tmp = Path(tmp_name)
        one, two = tmp / "one" / "hub.db", tmp / "two" / "hub.db"
        one.parent.mkdir()
        two.parent.mkdir()
        device_ids = register_devices(f"sqlite:///{one}", args.devices)
        shutil.copy(one, two)  # the same devices and agreements, no readings

        subscribe_persistently(broker, "bench-bare")
        subscribe_persistently(broker, "bench-one")
        for n in (1, 2):
            subscribe_persistently(broker, f"bench-two-{n}", f"$share/{SHARE_GROUP}/sensing/v1/+/up")
        took = publish(broker, device_ids, total)
        print(f"published              {total:>10,} readings from {args.devices} devices in {took:.1f} s "
              f"({total / took:,.0f}/s, QoS 1)")  # fmt: skip

        bare = bare_subscriber_rate(broker, "bench-bare", total)
        print(f"bare paho subscriber   {bare:>10,.0f} messages/s received (the broker-and-client ceiling)")
        runs = (("1 process", one, "bench-one", 1), ("2 workers", two, "bench-two", 2))
        for label, db_path, client_id, workers in runs:
            rate, stored = hub_ingest_rate(broker, db_path, client_id, total, workers)
            print(f"hub ingest, {label}   {rate:>10,.0f} readings/s committed to SQLite ({stored:,} stored), "
                  f"{rate / bare:.2f} x bare (target >= 0.70)")  # fmt: skip
        print(f"idle hub memory (RSS)  {idle_hub_rss_mb(tmp):>10.0f} MB (target < 150 MB)")


if __name__ == "__main__":
    main()
