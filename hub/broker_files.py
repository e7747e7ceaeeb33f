"""Mosquitto's password and ACL files, written from the hub's devices (`sensing hub broker-files --dir DIR`).

    written = write_broker_files(engine, Path("/etc/mosquitto/sensing"), "hub", "its-password")
    written.devices, written.without_hash    # 41, 0

`passwords` holds each device's id with its secret hashed the way Mosquitto wants it (made at registration:
the hub keeps no plaintext secret), plus the hub's ingest user; `acl` lets each device publish and read only
under its own id (hub.broker_access). Each file is replaced in one rename, so a Mosquitto reloading meanwhile
(SIGHUP) reads the old file or the new one, never half of one.
"""

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from hub.broker_access import acl_text
from hub.ingest.mqtt import parse_broker_url
from hub.models import Device
from hub.security import mosquitto_hash
from hub.settings import Settings

log = logging.getLogger("hub.broker")

PASSWORDS, ACL = "passwords", "acl"
_writing = threading.Lock()  # two registrations at once: the second writer reads the database after both


@dataclass(frozen=True)
class BrokerFiles:
    passwords: Path
    acl: Path
    devices: int  # devices that can log in
    without_hash: int  # devices registered before the hub made Mosquitto hashes: they cannot log in


def write_broker_files(engine: Engine, directory: Path, hub_user: str | None, hub_password: str | None
                       ) -> BrokerFiles:
    with _writing:
        return _write(engine, directory, hub_user, hub_password)


def hub_login(settings: Settings) -> tuple[str | None, str | None]:
    """The hub's ingest user and password on its broker, from SENSING_BROKER_URL."""
    if not settings.broker_url:
        return None, None
    address = parse_broker_url(settings.broker_url)
    return address.username, address.password


def rewrite_after_registration(settings: Settings, engine: Engine) -> None:
    """With SENSING_BROKER_FILES_DIR, write the files again; a failure is logged, the registration stands."""
    if settings.broker_files_dir is None:
        return
    try:
        write_broker_files(engine, settings.broker_files_dir, *hub_login(settings))
    except (OSError, ValueError) as exc:
        log.error("could not rewrite Mosquitto's files in %s: %s", settings.broker_files_dir, exc)


def _write(engine: Engine, directory: Path, hub_user: str | None, hub_password: str | None) -> BrokerFiles:
    with engine.connect() as conn:
        rows = conn.execute(select(Device.public_id, Device.mosquitto_hash).order_by(Device.public_id)).all()
    lines = [f"{public_id}:{hashed}\n" for public_id, hashed in rows if hashed]
    if hub_user and hub_password is not None:
        lines.insert(0, f"{hub_user}:{mosquitto_hash(hub_password)}\n")
    directory.mkdir(parents=True, exist_ok=True)
    passwords, acl = directory / PASSWORDS, directory / ACL
    _replace(passwords, "".join(lines))
    _replace(acl, acl_text(hub_user))
    devices = sum(1 for _, hashed in rows if hashed)
    return BrokerFiles(passwords, acl, devices, len(rows) - devices)


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` in one step, readable only by its owner (the password hashes are secrets)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
