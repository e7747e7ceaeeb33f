"""Who may log in to the MQTT broker, and what each may do: one set of rules for both brokers.

A device logs in with its public id as user name and its secret as password. It may publish its readings and
its status, and read its settings; the hub's ingest logs in as a user of its own and reads every device's uplink
and status:

    may("air-7kq2m9xp", "write", "sensing/v1/air-7kq2m9xp/up")      # True
    may("air-7kq2m9xp", "write", "sensing/v1/air-other/up")         # False
    may("sensing-hub", "read", "sensing/v1/+/up", hub_user="sensing-hub")   # True

The embedded broker checks these rules itself (hub.broker); for Mosquitto, `acl_text` writes the same rules as
its acl_file (hub.broker_files), and Mosquitto checks them.
"""

import asyncio
import hmac
import logging
import time
from typing import Literal

from sqlalchemy import Engine, select

from hub.ingest.mqtt import STATUS_TOPIC, TOPIC
from hub.models import Device
from hub.security import token_hash

log = logging.getLogger("hub.broker")

Access = Literal["read", "write"]

# Every user's own topics (Mosquitto's `pattern` lines: %u is the user name).
DEVICE_RULES: tuple[tuple[Access, str], ...] = (
    ("write", "sensing/v1/%u/up"),
    ("write", "sensing/v1/%u/status"),
    ("read", "sensing/v1/%u/config"),
)
# The hub's ingest user, in addition (`user` and `topic` lines).
HUB_RULES: tuple[tuple[Access, str], ...] = (("read", TOPIC), ("read", STATUS_TOPIC))

LOGIN_CACHE_SECONDS = 60.0  # a device that reconnects within this is not looked up again


def covers(pattern: str, topic: str) -> bool:
    """Whether the topic filter `pattern` matches every topic that `topic` (a topic, or a filter) can name."""
    wanted, given = pattern.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(given):
            return False
        if level == "+" and given[index] != "#":
            continue
        if level != given[index]:
            return False
    return len(given) == len(wanted)


def rules_for(user: str, hub_user: str | None) -> list[tuple[Access, str]]:
    own = [(access, pattern.replace("%u", user)) for access, pattern in DEVICE_RULES]
    return own + list(HUB_RULES) if user == hub_user else own


def may(user: str | None, access: Access, topic: str, *, hub_user: str | None = None) -> bool:
    """Whether `user` may publish to (`write`) or subscribe to and receive (`read`) `topic`."""
    if not user or any(char in user for char in "/+#"):  # as Mosquitto: no pattern substitution for such names
        return False
    return any(granted == access and covers(pattern, topic) for granted, pattern in rules_for(user, hub_user))


def acl_text(hub_user: str | None) -> str:
    """The rules as a Mosquitto acl_file."""
    lines = ["# Written by `sensing hub broker-files`: each device publishes and reads only under its own id."]
    lines += [f"pattern {access} {pattern}" for access, pattern in DEVICE_RULES]
    if hub_user:
        lines += ["", "# The hub's ingest.", f"user {hub_user}"]
        lines += [f"topic {access} {pattern}" for access, pattern in HUB_RULES]
    return "\n".join(lines) + "\n"


class Logins:
    """Checks the user name and password of a client of the embedded broker.

    A device's secret is checked against its SHA-256 in the database (off the event loop); a device that logged in
    is remembered for a minute, so a reconnecting fleet costs no queries. The hub's own ingest logs in with a
    credential made when the hub started, never stored or shown.
    """

    def __init__(self, engine: Engine, hub_user: str, hub_password: str):
        self.engine = engine
        self.hub_user = hub_user
        self._hub_password = hub_password
        self._recent: dict[tuple[str, str], float] = {}  # (user, hash of the password) -> when it was checked

    async def refusal(self, username: str | None, password: str | None) -> str | None:
        """Why this client may not log in, or None when it may."""
        if not username or password is None:
            return "no user name or password"
        if username == self.hub_user:
            return None if hmac.compare_digest(password, self._hub_password) else "wrong password for the hub's user"
        key = (username, token_hash(password))
        checked = self._recent.get(key)
        if checked is not None and time.monotonic() - checked < LOGIN_CACHE_SECONDS:
            return None
        stored = await asyncio.to_thread(self._secret_hash, username)
        if stored is None:
            return "unknown device"
        if not hmac.compare_digest(stored, key[1]):
            return "wrong secret"
        self._forget_old()
        self._recent[key] = time.monotonic()
        return None

    def _secret_hash(self, public_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Device.secret_hash).where(Device.public_id == public_id)).scalar()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, at in self._recent.items() if now - at >= LOGIN_CACHE_SECONDS]:
            del self._recent[key]
