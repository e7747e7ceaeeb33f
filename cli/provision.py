"""`sensing device provision`: register a board's device with the hub, with its resident's consent, write its
/config.json, restart it, and wait until the hub has its first reading.

    sensing device provision --port /dev/ttyACM0 --hub http://192.168.1.10:8000 --key fac_… [--answers me.yaml]

Resumable: a board whose /config.json names a device this hub knows is not registered again (--reuse keeps
it without asking). The board must hold the firmware already (`sensing device deploy`).

A hub whose broker speaks TLS (GET /api/v1/hub says broker_tls) needs the CA certificate that signed the
broker's: --broker-ca (or SENSING_BROKER_CA_FILE, the hub's own setting, on the hub's computer). It is copied to
the board as /broker-ca.der and named in the config (broker_tls, broker_ca). The hub does not hand it out: a
certificate fetched over the hub's plain HTTP would be trusted because of where it came from, not checked.
"""

import ast
import base64
import binascii
import contextlib
import json
import re
import ssl
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import typer

from cli.app import abort, console
from cli.board import Board, BoardError, connected
from cli.consent_questions import AnswerError, Answers, from_file, interview
from cli.hubclient import DEFAULT_HUB, call, client
from cli.monitor import Lines, reading_text, soft_reboot

STAFF = ("operator", "facilitator")
FIRST_READING_WAIT = 120  # seconds: a board joins WiFi (up to 30 s), gets the time, connects and sends
# What the firmware's log lines say when it cannot use its config ("sensing: config invalid: ...").
CONFIG_TROUBLE = ("config invalid", "the config", "config refused", "config file")
CHECK_EVERY = 1.0  # seconds between asking the hub for the first reading
RECENT = 120  # seconds before the restart (the board's clock may lag) that readings are looked at

BOARD_CA = "/broker-ca.der"  # where the broker's CA certificate goes on the board (DER: the smallest form)
PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)

# Runs on the board in one raw-REPL command: its /config.json as text, what it is, whether firmware is there,
# and its unique id (machine.unique_id(), which a Pico keeps through a flash: a workshop knows it again by it).
BOARD_STATE = """\
def _state():
    import os, sys
    def text(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None
    def exists(path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False
    # deploy compiles the modules to .mpy, or copies them as .py (--source, or a board of another mpy version)
    firmware = exists('/main.py') and (exists('/app.mpy') or exists('/app.py'))
    try:
        import binascii, machine
        uid = binascii.hexlify(machine.unique_id()).decode()
    except Exception:
        uid = None
    u = os.uname()
    print(repr({'config': text('/config.json'), 'machine': u.machine, 'platform': sys.platform,
                'version': '.'.join(str(n) for n in sys.implementation.version[:3]), 'firmware': firmware,
                'id': uid}))
_state()
del _state
"""

# os.uname().machine -> the firmware's board name; the first that is contained in it wins.
MACHINES = (
    ("Pico 2 W", "RPI_PICO2_W"),
    ("Pico W", "RPI_PICO_W"),
    ("ESP32S3", "ESP32_GENERIC_S3"),
    ("ESP32-S3", "ESP32_GENERIC_S3"),
    ("ESP32C3", "ESP32_GENERIC_C3"),
    ("ESP32-C3", "ESP32_GENERIC_C3"),
    ("ESP32", "ESP32_GENERIC"),
)


def board_name(machine: str) -> str | None:
    return next((name for part, name in MACHINES if part in machine), None)


def look_at(board: Board) -> dict:
    """What BOARD_STATE prints, with the config parsed: {"config": dict | None | str (unparsable), ...}."""
    state = ast.literal_eval(board.transport.exec(BOARD_STATE).decode().strip())
    if state["config"] is not None:
        try:
            state["config"] = json.loads(state["config"])
        except ValueError:
            pass  # left as text: the caller says it is not JSON
    return state


def make_config() -> Callable[[dict], dict]:
    """The firmware's own validator: the config module where the firmware has one, else the app's."""
    try:
        from firmware.config import make_config as check
    except ImportError:
        from firmware.app import make_config as check
    return check


def firmware_config(given: dict) -> str | None:
    """None when the firmware would accept `given`, else its one sentence saying why not."""
    try:
        make_config()(dict(given))
    except ValueError as e:
        return str(e)
    return None


class CAError(Exception):
    """The broker's CA certificate is missing or unusable; the message is one sentence."""


def read_ca(path: Path) -> bytes:
    """The CA certificate in `path` (PEM, its first certificate, or DER) as DER, checked to be a certificate."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CAError(f"The CA certificate {path} cannot be read ({e.strerror or 'not a file'}): give the file "
                      "the hub's operator gave you (ca.pem).") from None  # fmt: skip
    pem = PEM_CERTIFICATE.search(data)
    try:
        der = base64.b64decode(pem.group(1), validate=False) if pem else data
        ssl.create_default_context(cadata=der)  # OpenSSL reads it as a certificate, or refuses
    except (ssl.SSLError, ValueError, binascii.Error):
        raise CAError(f"{path} is not a certificate (PEM or DER): give the CA certificate the hub's operator gave "
                      "you (ca.pem, never ca.key).") from None  # fmt: skip
    return der


def broker_ca(info: dict, path: Path | None) -> bytes | None:
    """What the board needs to check the hub's broker: its CA certificate (DER) when the broker speaks TLS, else
    None. CAError when it is needed and not given, or cannot be used."""
    if not info.get("broker_tls"):
        return None
    if path is None:
        raise CAError(f"The hub's broker ({info['broker_host']}:{info['broker_port']}) speaks TLS: give the CA "
                      "certificate that signed its certificate with --broker-ca (the hub's operator has it: "
                      "ca.pem).")  # fmt: skip
    return read_ca(path)


def known_device(hub: str, device_id: str) -> dict | None:
    """The device's public record on this hub, or None when the hub does not know it."""
    with client(hub) as http:
        response = http.get(f"/api/v1/devices/{device_id}")
    return response.json() if response.status_code == 200 else None


@contextlib.contextmanager
def step(text: str) -> Iterator[None]:
    """A spinner while something takes time, where there is a terminal to show it."""
    if console.is_terminal:
        with console.status(text):
            yield
    else:
        yield


def first_reading_finder(hub: str, device_id: str, token: str | None, public: bool,
                         request: Callable[..., dict] = call) -> Callable[[], dict | None]:  # fmt: skip
    """A function asking the hub for the device's first reading from now on: its values, or None yet.

    With the resident's token (or the operator's key), the device's own readings; without, its open data if it
    shares openly. Readings the hub had already (a board provisioned again) are left behind by their id.
    `request` makes the calls (hubclient.call, which aborts on a failure; a workshop's boards raise instead).
    """
    if token:
        path, key, group = f"/api/v1/devices/{device_id}/readings", token, "seq"
    elif public:
        path, key, group = "/api/v1/open/readings", None, "measured_at"
    else:
        return lambda: None
    params = {"since": (datetime.now(UTC) - timedelta(seconds=RECENT)).isoformat(), "limit": 1000}
    if device_id and not token:
        params["device"] = device_id

    def rows(**more: object) -> list[dict]:
        return request(hub, "GET", path, key=key, params={**params, **more})["readings"]

    known = max((row["id"] for row in rows()), default=None)

    def first() -> dict | None:
        new = rows(after=known) if known is not None else rows()
        earliest = min((row[group] for row in new), default=None)
        return {row["quantity"]: row["value"] for row in new if row[group] == earliest} or None

    return first


def board_problem(line: str, wifi_ssid: str, traceback: list[str]) -> str | None:
    """A line the board printed that means it will not get a reading to the hub, as one sentence."""
    if traceback:
        if line.startswith(" "):
            return None
        traceback.clear()
        return (f"The firmware on the board stopped with an error ({line}): "
                "run sensing device deploy, then provision again.")  # fmt: skip
    if line.startswith("Traceback (most recent call last)"):
        traceback.append(line)
    elif "could not join WiFi" in line or "cannot join WiFi" in line:
        return (f"The board could not join the WiFi network '{wifi_ssid}': check the network's name and "
                "password (both are case-sensitive), then provision again.")  # fmt: skip
    elif line.startswith("sensing: ") and any(words in line for words in CONFIG_TROUBLE):
        return f"The board refused its config ({line.removeprefix('sensing: ')}): provision it again."
    return None


def wait_for_first_reading(lines: Lines, find: Callable[[], dict | None], wifi_ssid: str, seconds: float,
                           fail: Callable[[str], NoReturn] = abort) -> dict:  # fmt: skip
    """Watch the board's output for failures while asking the hub, until a reading arrives or time is up.
    A failure is one sentence given to `fail` (abort, or a workshop's board raising it)."""
    import time

    deadline = time.monotonic() + seconds
    next_check = 0.0
    traceback: list[str] = []
    last_word = ""
    while time.monotonic() < deadline:
        for line in lines.read():
            problem = board_problem(line, wifi_ssid, traceback)
            if problem:
                fail(problem)
            if line.startswith("sensing: "):
                last_word = line.removeprefix("sensing: ")
        if time.monotonic() >= next_check:
            values = find()
            if values:
                return values
            next_check = time.monotonic() + CHECK_EVERY
    said = f"; the board's last word: {last_word}" if last_word else ": check the board's power and WiFi"
    fail(f"No reading reached the hub within {seconds:g} s{said}.")


def register(hub: str, key: str, answers: Answers, board: str, consent_version: str) -> dict:
    with step("Registering the device with the hub"):
        # One Idempotency-Key per run: a repeat of this registration would find the same device.
        reg = call(hub, "POST", "/api/v1/devices", key=key, json=answers.registration(board, consent_version),
                   headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
    device = reg["device"]
    console.print(
        f"✓ Registered {device['public_id']}: sharing {answers.sharing}, in {device['area']}.", highlight=False
    )
    console.print(
        f"  Owner token    {reg['owner_token']}  (the resident's key to their readings: shown only now)",
        highlight=False,
    )
    return reg


def get_answers(answers_file: Path | None, purposes: dict[str, str]) -> Answers:
    try:
        if answers_file is not None:
            return from_file(answers_file, purposes)
        return interview(typer.prompt, lambda text: console.print(text, highlight=False), purposes).check(purposes)
    except AnswerError as e:
        abort(str(e))


def reuse_existing(existing: dict, info: dict, hub: str, reuse: bool | None) -> dict | None:
    """The public record of the device the board is set up as, if this hub knows it and it is to be kept."""
    device_id = existing.get("device_id") if isinstance(existing, dict) else None
    if not device_id or not existing.get("secret") or reuse is False:
        return None
    known = known_device(hub, device_id)
    if known is None:
        console.print(f"  The board was set up as {device_id}, which this hub does not know: registering anew.",
                      highlight=False)  # fmt: skip
        return None
    if reuse is None and not typer.confirm(
        f"The board is already set up as {device_id} on {info['name']}. Keep it (no new registration)?", default=True
    ):
        return None
    console.print(f"✓ Keeping {device_id}, already registered with this hub.", highlight=False)
    return known


def board_config(existing: dict | None, device_id: str, secret: str, info: dict, answers: Answers | None,
                 board: str, interval: int) -> dict:  # fmt: skip
    """The new /config.json: what the board had (when kept), then this device, this hub's broker, the answers."""
    config = dict(existing) if existing else {}
    config.update(device_id=device_id, secret=secret, broker_host=info["broker_host"],
                  broker_port=info["broker_port"], interval=interval, board=board)  # fmt: skip
    if info.get("broker_tls"):
        config.update(broker_tls=True, broker_ca=BOARD_CA)  # provisioning copies the CA certificate there
    else:
        config.pop("broker_tls", None)
        config.pop("broker_ca", None)
    if answers is not None:
        config.pop("wifi_ssid", None)
        config.pop("wifi_password", None)
        if answers.wifi_ssid:
            config.update(wifi_ssid=answers.wifi_ssid, wifi_password=answers.wifi_password)
        if answers.sensors:
            config["sensors"] = answers.sensors
    return config


BROKER_CA_OPTION = typer.Option(
    None, "--broker-ca", envvar="SENSING_BROKER_CA_FILE",
    help="The CA certificate (PEM or DER) that signed the broker's, when the hub's broker speaks TLS.",
)  # fmt: skip


def hub_for_devices(hub: str, key: str, ca_file: Path | None) -> tuple[dict, bytes | None]:
    """GET /api/v1/hub, checked to take registrations with this key; and the broker's CA certificate (DER) when
    its broker speaks TLS. Aborts with the sentence saying what is missing."""
    info = call(hub, "GET", "/api/v1/hub", key=key)
    if info["key_role"] not in STAFF:
        abort("That key cannot register devices: use a facilitator key from the hub's operator.")
    if not info["consent_version"]:
        abort("The hub has no consent text yet: ask the hub operator to publish one.")
    try:
        ca = broker_ca(info, ca_file)
    except CAError as e:
        abort(str(e))
    if ca is None and ca_file is not None:
        console.print(f"  The hub's broker does not speak TLS: {ca_file} is not needed, and not copied.",
                      highlight=False)  # fmt: skip
    return info, ca


def provision(
    port: str = typer.Option(..., "--port", "-p", envvar="SENSING_PORT", help="The board's serial port."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
    key: str = typer.Option(..., "--key", envvar="SENSING_KEY", help="A facilitator (or operator) key."),
    answers_file: Path = typer.Option(
        None, "--answers", help="The resident's answers as a YAML or JSON file, instead of asking them."
    ),
    reuse: bool = typer.Option(
        None, "--reuse/--new",
        help="A board already set up for a device on this hub: keep it (--reuse) or register anew (--new).",
    ),  # fmt: skip
    board_type: str = typer.Option(None, "--board", help="The board type, e.g. ESP32_GENERIC (default: asked)."),
    interval: int = typer.Option(60, help="Seconds between readings."),
    owner_token: str = typer.Option(
        None, "--owner-token", envvar="SENSING_OWNER_TOKEN",
        help="With --reuse: the resident's token, to see the first reading (their readings are theirs).",
    ),  # fmt: skip
    wait: float = typer.Option(FIRST_READING_WAIT, help="Seconds to wait for the first reading at the hub."),
    ca_file: Path = BROKER_CA_OPTION,
) -> None:
    """Register the board's device with its resident's consent, configure it, and see its first reading."""
    info, ca = hub_for_devices(hub, key, ca_file)
    purposes = call(hub, "GET", "/api/v1/consent/purposes")
    answers = get_answers(answers_file, purposes) if answers_file is not None else None
    try:
        with step(f"Looking at the board at {port}"), connected(port) as board:
            state = look_at(board)
        if not state["firmware"]:
            abort(f"The board at {port} has no sensing firmware yet: run sensing device deploy --port {port} first.")
        kind = board_type or board_name(state["machine"])
        if kind is None:
            abort(f"Which board is this ({state['machine']})? Say with --board, e.g. --board ESP32_GENERIC.")
        existing = state["config"] if isinstance(state["config"], dict) else None
        known = reuse_existing(existing, info, hub, reuse) if existing else None
        if known is None:
            answers = answers or get_answers(None, purposes)
            reg = register(hub, key, answers, kind, info["consent_version"])
            device_id, secret, token = reg["device"]["public_id"], reg["device_secret"], reg["owner_token"]
            public, existing = reg["device"]["sharing"] == "open", None
        else:
            device_id, secret = existing["device_id"], existing["secret"]
            token = owner_token or (key if info["key_role"] == "operator" else None)
            public = known["sharing"] == "open" and known["consent_active"]
        config = board_config(existing, device_id, secret, info, answers, kind, interval)
        refused = firmware_config(config)
        if refused:
            abort(f"The board's config would be refused: {refused}.")
        find = first_reading_finder(hub, device_id, token, public)
        with connected(port) as board:
            if ca is not None:
                board.write_file(BOARD_CA, ca)
            board.write_file("/config.json", json.dumps(config, indent=1).encode())
            wifi = f"WiFi '{config['wifi_ssid']}'" if config.get("wifi_ssid") else "no WiFi"
            tls = f" over TLS (its CA certificate in {BOARD_CA})" if ca is not None else ""
            console.print(f"✓ Wrote /config.json to the board at {port}: {wifi}, broker "
                          f"{config['broker_host']}:{config['broker_port']}{tls}, a reading every {interval} s.",
                          highlight=False)  # fmt: skip
            restart_and_wait(board, find, config.get("wifi_ssid", ""), wait, can_see=token is not None or public)
    except BoardError as e:
        abort(str(e))


def restart_and_wait(board: Board, find: Callable[[], dict | None], wifi_ssid: str, wait: float, can_see: bool):
    board.transport.exit_raw_repl()
    lines = Lines(board.transport.serial)
    lines.port.timeout = 0.1
    if not soft_reboot(lines.port, lines):
        abort(f"The board at {board.port} did not restart: press its reset button, then run doctor.")
    console.print("✓ Restarted the board.", highlight=False)
    if not can_see:
        console.print("  The hub shows a device's readings only to its resident and the operator: "
                      "give --owner-token to wait for the first one here.", highlight=False)  # fmt: skip
        return
    with step("Waiting for the first reading at the hub"):
        values = wait_for_first_reading(lines, find, wifi_ssid, wait)
    console.print(f"✓ first reading: {reading_text(values)}", highlight=False)
