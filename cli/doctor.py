"""`sensing device doctor`: is this board set up and getting readings to the hub? Each check ✓ or ✗, with a fix.

Checks run in order and stop at the first that leaves nothing further to look at (no board, no config).
What can be asked of the board is asked of it: its WiFi, whether it reaches the broker (a socket from the
board), which sensors answer on its buses (the firmware's own registry). A check that cannot be made is
shown with "–" and says why; only ✗ makes the exit status non-zero.
"""

import ast
import json
from dataclasses import dataclass

import httpx
import typer

from cli.app import console
from cli.board import Board, BoardError, connected
from cli.device_deploy import FIRMWARE
from cli.hubclient import DEFAULT_HUB, client
from cli.monitor import Lines, reading_text, soft_reboot
from cli.provision import firmware_config, look_at

OLDEST_MICROPYTHON = (1, 22)

# On the board: its WiFi, and a TCP connection to the broker, as the firmware would make it.
NETWORK = """\
def _network(host, port):
    out = {'wifi': None, 'broker': None}
    try:
        import network
    except ImportError:
        network = None
    if network is not None:
        wlan = network.WLAN(network.STA_IF)
        out['wifi'] = wlan.isconnected()
    if host:
        import socket
        s = None
        try:
            address = socket.getaddrinfo(host, port)[0][-1]
            s = socket.socket()
            s.settimeout(3)
            s.connect(address)
            out['broker'] = ''
        except Exception as e:
            out['broker'] = str(e) or repr(e)
        finally:
            if s is not None:
                s.close()
    print(repr(out))
_network(%r, %r)
del _network
"""

# On the board: the sensors its buses answer with, found by the firmware's registry; None without buses.
SENSORS = """\
def _sensors(board_map):
    import machine
    if not hasattr(machine, 'I2C'):
        print(repr(None))
        return
    from sensors import registry
    faults = []
    buses = registry.open_buses(board_map, machine, faults=faults)
    drivers = registry.find_drivers(buses, faults=faults)
    print(repr({'found': [d.name for d in drivers], 'faults': [f['message'] for f in faults]}))
_sensors(%r)
del _sensors
"""


@dataclass
class Report:
    failed: bool = False

    def ok(self, text: str) -> None:
        console.print(f"[green]✓[/green] {text}", highlight=False)

    def skip(self, text: str) -> None:
        console.print(f"– {text}", highlight=False)

    def bad(self, text: str, fix: str | None = None) -> None:
        console.print(f"[red]✗[/red] {text}", highlight=False)
        if fix:
            console.print(f"  fix: {fix}", highlight=False)
        self.failed = True


def on_board(board: Board, script: str) -> object:
    return ast.literal_eval(board.transport.exec(script).decode().strip())


def restart(board: Board) -> None:
    """Looking at the board stopped its firmware: start it again, as it was found."""
    board.transport.exit_raw_repl()
    port = board.transport.serial
    port.timeout = 0.1
    soft_reboot(port, Lines(port))


def check_board(report: Report, state: dict, port: str) -> None:
    report.ok(f"Board reachable at {port}: {state['machine']}")
    version = tuple(int(n) for n in state["version"].split("."))
    if version < OLDEST_MICROPYTHON:
        oldest = ".".join(map(str, OLDEST_MICROPYTHON))
        report.bad(f"MicroPython {state['version']} is too old (the firmware needs {oldest} or newer)",
                   f"sensing device flash --port {port}")  # fmt: skip
    else:
        report.ok(f"MicroPython {state['version']}")
    if state["firmware"]:
        report.ok("Firmware on the board")
    else:
        report.bad("The sensing firmware is not on the board", f"sensing device deploy --port {port}")


def check_config(report: Report, config: object, port: str, hub: str) -> dict | None:
    fix = f"sensing device provision --port {port} --hub {hub}"
    if config is None:
        report.bad("The board has no /config.json: it has not been provisioned", fix)
        return None
    if not isinstance(config, dict):
        report.bad("The board's /config.json is not valid JSON", fix)
        return None
    refused = firmware_config(config)
    if refused:
        report.bad(f"The board's /config.json would be refused: {refused}", fix)
        return None
    report.ok(f"Config valid: device {config['device_id']}, board {config.get('board') or 'not named'}")
    return config


def check_network(report: Report, board: Board, config: dict, hub_broker: tuple[str, int] | None, port: str):
    host, broker_port = config.get("broker_host", "127.0.0.1"), config.get("broker_port", 1883)
    found = on_board(board, NETWORK % (host, broker_port))
    ssid = config.get("wifi_ssid")
    if found["wifi"] is None:
        report.skip("WiFi: this board has no WiFi radio (a simulator, or a board on its host's network)")
    elif found["wifi"]:
        report.ok(f"WiFi: connected to {ssid}" if ssid else "WiFi: connected")
    else:
        report.bad(f"WiFi: the board is not connected{f' to {ssid}' if ssid else ''}",
                   "check the network's name and password (both case-sensitive) and that the board is in range, "
                   f"then sensing device provision --port {port} --reuse")  # fmt: skip
    if found["broker"]:
        report.bad(f"The board cannot reach the broker at {host}:{broker_port} ({found['broker']})",
                   "start the hub, and let its broker listen on the network (SENSING_EMBEDDED_BROKER_HOST=0.0.0.0; "
                   "see docs/operators.md)")  # fmt: skip
    else:
        report.ok(f"Broker {host}:{broker_port} reachable from the board")
    if hub_broker is not None and hub_broker != (host, broker_port):
        report.bad(f"The board uses the broker {host}:{broker_port}, but the hub's is {hub_broker[0]}:{hub_broker[1]}",
                   f"sensing device provision --port {port} --reuse")  # fmt: skip


def check_sensors(report: Report, board: Board, config: dict) -> None:
    if config.get("sensors") == "emulated":
        report.ok("Sensors: emulated, as the config says")
        return
    board_map = FIRMWARE / "boards" / f"{config.get('board')}.json"
    if not board_map.is_file():
        report.skip("Sensors: not looked for: the config names no board with a pin map")
        return
    found = on_board(board, SENSORS % (json.loads(board_map.read_text()),))
    if found is None:
        report.skip("Sensors: this board has no sensor buses (a simulator): the firmware reads its emulated sensor")
    elif found["found"]:
        report.ok(f"Sensors: {', '.join(found['found'])}")
    else:
        problems = "; ".join(found["faults"]) or "nothing answered on the I2C bus or the 1-Wire pin"
        report.bad(f"Sensors: none found ({problems})",
                   "check the sensor's wiring against docs/sensors.md, with the board unplugged")  # fmt: skip


def hub_info(report: Report, hub: str, key: str | None) -> dict | None:
    try:
        with client(hub, key, timeout=10) as http:
            response = http.get("/api/v1/hub")
    except httpx.HTTPError:
        report.bad(f"The hub at {hub} is not reachable", "start it (make run), or check the address given with --hub")
        return None
    if response.status_code == 401:
        report.bad("The hub did not accept the key", "check it was copied whole, or ask the hub operator for one")
        return None
    if response.is_error:
        report.bad(f"The hub at {hub} answered {response.status_code}", "check the address given with --hub")
        return None
    info = response.json()
    report.ok(f"Hub reachable: {info['name']}")
    return info


def first_rows(hub: str, device_id: str, token: str | None, public: bool) -> list[dict] | None:
    """The device's first readings at the hub (the lowest seq, or the earliest open ones); None: cannot see."""
    with client(hub, token, timeout=10) as http:
        if token:
            rows = http.get(f"/api/v1/devices/{device_id}/readings", params={"limit": 50}).json()["readings"]
            group = "seq"
        elif public:
            rows = http.get("/api/v1/open/readings", params={"device": device_id, "limit": 50}).json()["readings"]
            group = "measured_at"
        else:
            return None
    first = min((row[group] for row in rows), default=None)
    return [row for row in rows if row[group] == first]


def check_hub(report: Report, hub: str, info: dict, device_id: str, key: str | None, owner: str | None, port: str):
    with client(hub, timeout=10) as http:
        response = http.get(f"/api/v1/devices/{device_id}")
    if response.status_code == 404:
        report.bad(f"The hub does not know the device {device_id}",
                   f"sensing device provision --port {port} --hub {hub} --new")  # fmt: skip
        return
    device = response.json()
    if not device["consent_active"]:
        report.bad(f"{device_id} has no consent in force: the hub refuses its readings",
                   "the resident gives a new agreement (docs/consent.md), or provision the board anew")  # fmt: skip
        return
    report.ok(f"Device {device_id} registered with the hub, consent in force, sharing {device['sharing']}")
    token = owner or (key if info.get("key_role") == "operator" else None)
    rows = first_rows(hub, device_id, token, device["sharing"] == "open")
    if rows is None:
        report.skip("First reading at the hub: not checked: the hub shows a device's readings only to its resident "
                    "and the operator (give --owner-token, or an operator --key)")  # fmt: skip
    elif rows:
        values = {row["quantity"]: row["value"] for row in rows}
        report.ok(f"First reading at the hub: {reading_text(values)}")
    else:
        report.bad(f"No reading from {device_id} has reached the hub yet",
                   f"sensing device monitor --port {port} --restart shows what the board says")  # fmt: skip


def doctor(
    port: str = typer.Option(..., "--port", "-p", envvar="SENSING_PORT", help="The board's serial port."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
    key: str = typer.Option(None, "--key", envvar="SENSING_KEY", help="A facilitator or operator key (optional)."),
    owner_token: str = typer.Option(
        None, "--owner-token", envvar="SENSING_OWNER_TOKEN", help="The resident's token, to see their readings."
    ),
) -> None:
    """Check a board and its way to the hub: each check ✓ or ✗, with what to do."""
    report = Report()
    try:
        with connected(port) as board:
            state = look_at(board)
            check_board(report, state, port)
            info = hub_info(report, hub, key)
            config = check_config(report, state["config"], port, hub)
            if config is not None:
                broker = (info["broker_host"], info["broker_port"]) if info else None
                check_network(report, board, config, broker, port)
                if state["firmware"]:
                    check_sensors(report, board, config)
            if state["firmware"]:
                restart(board)
    except BoardError as e:
        report.bad(str(e))
        raise typer.Exit(1) from None
    if config is not None and info is not None:
        check_hub(report, hub, info, config["device_id"], key, owner_token, port)
    if report.failed:
        raise typer.Exit(1)


