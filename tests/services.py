"""Real services for tests and benchmarks: a private Mosquitto, throwaway PostgreSQL databases, MicroPython,
headless Chromium.

Nothing here is mocked. Tests ask for a service through `tests/conftest.py`; when the service is missing on
a user's machine the test skips with the reason, and under CI=true it fails instead (see `require`).

    from tests.services import Mosquitto
    with Mosquitto(persistence=True) as broker:
        print(broker.url)        # mqtt://127.0.0.1:PORT
        broker.restart()         # same port, sessions kept
"""

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def require(available: bool, reason: str) -> None:
    """Skip the current test because a service is missing, or fail it when running under CI=true."""
    if available:
        return
    import pytest  # imported here so bench scripts can use this module without pytest

    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true, so a missing service is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def micropython_path() -> str | None:
    """The MicroPython unix port: the one installed in this venv first, else the one on PATH."""
    beside_python = Path(sys.executable).parent / "micropython"  # unresolved: the venv's bin, not the base's
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("micropython")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------ Certificates

@dataclass(frozen=True)
class Certificates:
    ca: Path    # the CA's certificate (PEM): what a client trusts
    cert: Path  # the broker's certificate, signed by the CA, for 127.0.0.1 and localhost
    key: Path   # the broker's private key

    def ca_der(self) -> Path:
        """The CA's certificate as DER, beside the PEM."""
        der = self.ca.with_suffix(".der")
        if not der.exists():
            _openssl("x509", "-in", self.ca, "-outform", "DER", "-out", der)
        return der


def make_certificates(directory: Path, name: str = "Sensing test CA") -> Certificates:
    """A CA of our own and a broker certificate it signs, for IP 127.0.0.1 and DNS localhost (P-256 keys,
    which MicroPython's mbedTLS takes), made with the openssl command in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = directory / "broker.pem", directory / "broker.key", directory / "broker.csr"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name}")
    _openssl("req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=localhost")
    extensions = directory / "broker.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                          "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", extensions)
    return Certificates(ca, cert, key)


def _openssl(*args) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


# ------------------------------------------------------------------------------------------------ Mosquitto

def mosquitto_path() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def chromium_paths() -> tuple[str, str] | None:
    """Chromium and its chromedriver (Debian: apt install chromium chromium-driver), or None when either is
    missing. Selenium is given both, so it never tries to download a browser or a driver."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


_running_brokers: "weakref.WeakSet[Mosquitto]" = weakref.WeakSet()


@atexit.register
def _stop_leftover_brokers() -> None:
    for broker in list(_running_brokers):
        broker.stop()


class Mosquitto:
    """A Mosquitto broker of our own, on a free port, with its config, log and persistence in a temporary dir.

    max_queued_messages is raised because the default (1000) silently drops QoS 1 messages for a subscriber
    that falls behind while publishers still get their PUBACK. max_inflight_messages stays at a realistic 20
    so the queue is really used (with 0, "unlimited", every message goes straight out and no limit is hit).
    """

    def __init__(
        self,
        *,
        persistence: bool = False,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        max_queued_messages: int = 1_000_000,
        max_inflight_messages: int = 20,
        extra_config: str = "",
        port: int | None = None,
        allow_anonymous: bool | None = None,
        tls: Certificates | None = None,
    ):
        self.host = HOST
        self.port = port or 0
        # With `tls`, a second listener on tls_port speaks MQTT over TLS with these certificates.
        self.tls = tls
        self.tls_port = 0
        self._fixed_port = port is not None
        self.persistence = persistence
        self.passwords = passwords
        self.acl = acl
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.extra_config = extra_config
        # None: anonymous clients are let in unless `passwords` is given (a password_file in extra_config may not be).
        self.allow_anonymous = not passwords if allow_anonymous is None else allow_anonymous
        self.directory: Path | None = None
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self._dir() / "mosquitto.log"

    def log_text(self) -> str:
        """The broker's log file, then anything it printed itself (config errors go to stderr)."""
        parts = []
        for path in (self.log_path, self._dir() / "mosquitto.out"):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def ports_of(self, client_id: str) -> list[int]:
        """The listener ports a client connected on, in order, from the log: Mosquitto logs each connection's
        listener ("New connection from 127.0.0.1:PEER on port P."), then the client id on that peer."""
        listener: dict[str, int] = {}
        ports = []
        for line in self.log_text().splitlines():
            if match := re.search(r"New connection from ([\d.:]+) on port (\d+)\.", line):
                listener[match[1]] = int(match[2])
            elif match := re.search(r"New client connected from ([\d.:]+) as (\S+) ", line):
                if match[2] == client_id:
                    ports.append(listener[match[1]])
        return ports

    def start(self) -> "Mosquitto":
        binary = mosquitto_path()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt install mosquitto / brew install mosquitto)")
        if self.running:
            return self
        attempts = 1 if (self._fixed_port or self.port) else 3  # a port picked by us may be taken meanwhile
        for attempt in range(attempts):
            if not self.port:
                self.port = free_port()
            if self.tls and not self.tls_port:
                self.tls_port = free_port()
            self._write_config()
            try:
                self._launch(binary)
                break
            except RuntimeError:
                if attempt == attempts - 1 or "Address already in use" not in self.log_text():
                    raise
                self.port = self.tls_port = 0
        _running_brokers.add(self)
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, so a persistent broker saves its sessions); the directory is kept."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        _running_brokers.discard(self)

    def restart(self) -> "Mosquitto":
        """Stop and start again on the same port, with the same configuration and persistence file."""
        self.stop()
        return self.start()

    def reload(self) -> None:
        """Make the broker read its password and ACL files again (SIGHUP), as an operator does after changing them.
        Returns once the broker has logged that it reloaded."""
        assert self._process is not None and self.running, "the broker is not running"
        reloads = self.log_text().count("Reloading config")
        self._process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count("Reloading config") > reloads, "Mosquitto reloaded its config")

    def close(self) -> None:
        """Stop the broker and delete its directory (config, log, persistence)."""
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Mosquitto {self.url} {'running' if self.running else 'stopped'}>"

    def _dir(self) -> Path:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="sensing-mosquitto-"))
        return self.directory

    def _write_config(self) -> Path:
        directory = self._dir()
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            "set_tcp_nodelay true",
            # Running as root, Mosquitto would switch to user "mosquitto", who cannot write our directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"log_dest file {directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {directory}/",
                      "persistence_file mosquitto.db"]
        else:
            lines.append("persistence false")
        if self.passwords:
            lines.append(f"password_file {self._write_passwords(directory)}")
        if self.acl is not None:
            (directory / "acl").write_text(self.acl)
            lines.append(f"acl_file {directory / 'acl'}")
        if self.extra_config:
            lines.append(self.extra_config)
        if self.tls:  # last: cafile, certfile and keyfile belong to the listener above them
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {self.tls.ca}",
                      f"certfile {self.tls.cert}", f"keyfile {self.tls.key}"]
        config = directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _write_passwords(self, directory: Path) -> Path:
        path = directory / "passwords"
        path.write_text("".join(f"{user}:{password}\n" for user, password in self.passwords.items()))
        path.chmod(0o600)
        hasher = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        # -U replaces each plain-text password with its hash, in place.
        subprocess.run([hasher, "-U", str(path)], check=True, capture_output=True, timeout=30)
        return path

    def _launch(self, binary: str) -> None:
        directory = self._dir()
        with open(directory / "mosquitto.out", "ab") as out:
            self._process = subprocess.Popen(
                [binary, "-c", str(directory / "mosquitto.conf")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"exited with status {self._process.returncode}")
            if port_accepts(self.port, self.host) and (not self.tls or port_accepts(self.tls_port, self.host)):
                return
            time.sleep(0.02)
        self._fail(f"did not accept connections within {START_TIMEOUT:.0f} s")

    def _fail(self, what: str) -> None:
        self.stop()
        tail = "\n".join(self.log_text().splitlines()[-20:])
        raise RuntimeError(f"Mosquitto on {self.url} {what}. Log ({self._dir()}):\n{tail}")


# ------------------------------------------------------------------------------------------------ PostgreSQL

PG_PORT = 5432
PG_CONNECT_TIMEOUT = 2  # seconds; a missing server must cost a moment, not a minute

_admin_url_cache: list[str | None] = []


def _psycopg_conninfo(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_admin_url() -> str | None:
    """SQLAlchemy URL of an admin database on 127.0.0.1:5432 as the first user that can log in, or None.

    Trust authentication is assumed: user "postgres", then the OS user; database "test", else "postgres".
    """
    if _admin_url_cache:
        return _admin_url_cache[0]
    import psycopg

    found = None
    for user in dict.fromkeys(["postgres", pwd.getpwuid(os.getuid()).pw_name]):
        for dbname in ("test", "postgres"):
            url = f"postgresql+psycopg://{user}@{HOST}:{PG_PORT}/{dbname}"
            try:
                with psycopg.connect(_psycopg_conninfo(url), connect_timeout=PG_CONNECT_TIMEOUT):
                    found = url
            except psycopg.OperationalError:
                continue
            break
        if found:
            break
    _admin_url_cache.append(found)
    return found


class PostgresDatabase:
    """A fresh, uniquely named database, dropped (with any connections still open to it) on close."""

    def __init__(self, admin_url: str | None = None, prefix: str = "sensing_test"):
        self.admin_url = admin_url or postgres_admin_url()
        if self.admin_url is None:
            raise RuntimeError(f"no PostgreSQL server accepting trust logins on {HOST}:{PG_PORT}")
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self.name
        self.created = False

    def create(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}"')
        self.created = True
        return self.url

    def drop(self) -> None:
        if self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False

    def reset(self) -> None:
        """Empty the database: end other connections (a previous test's pool), then recreate schema public."""
        import psycopg

        with psycopg.connect(_psycopg_conninfo(self.url), autocommit=True,
                             connect_timeout=PG_CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            conn.execute("SET lock_timeout = '10s'")
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def __enter__(self) -> str:
        return self.create()

    def __exit__(self, *exc_info) -> None:
        self.drop()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(_psycopg_conninfo(self.admin_url), autocommit=True,
                             connect_timeout=PG_CONNECT_TIMEOUT) as conn:
            conn.execute(statement)


# ------------------------------------------------------------------------------------------------ Waiting, publishing

WAIT = 15.0  # seconds: the bound on every wait for a broker, a worker or a hub


def wait_until(condition, what: str, wait: float = WAIT) -> None:
    """Poll `condition` until it is true; fail saying `what` was awaited once `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {wait:.0f} s")
        time.sleep(0.02)


def publish(broker_url: str, topic: str, payloads: list[bytes], username: str | None = None,
            password: str | None = None, ca: Path | None = None) -> None:
    """Publish at QoS 1 (MQTT 3.1.1, as devices do) and wait for the broker's PUBACK of each message.
    An mqtts:// URL goes over TLS, checking the broker against the CA certificate `ca`."""
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt

    address = urlsplit(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if address.scheme == "mqtts":
        client.tls_set(ca_certs=str(ca) if ca else None)
    client.connect(address.hostname, address.port or (8883 if address.scheme == "mqtts" else 1883))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=WAIT)
            assert info.is_published(), "the broker did not acknowledge a message in time"
    finally:
        client.disconnect()
        client.loop_stop()
