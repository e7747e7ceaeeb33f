"""`sensing device`: register a device with its owner's consent, deploy the firmware (flash and provision next)."""

from enum import StrEnum

import typer

from cli import device_deploy, device_flash, doctor, monitor, provision
from cli.app import abort, console
from cli.hubclient import DEFAULT_HUB, call

app = typer.Typer(
    help="Devices: register with consent; flash, deploy and provision a board; watch it and check it.",
    no_args_is_help=True,
)
app.command("deploy")(device_deploy.deploy)
app.command("flash")(device_flash.flash)
app.command("fetch-firmware")(device_flash.fetch_firmware)
app.command("provision")(provision.provision)
app.command("monitor")(monitor.monitor)
app.command("doctor")(doctor.doctor)

HubOpt = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address.")
KeyOpt = typer.Option(..., "--key", envvar="SENSING_KEY", help="An operator or facilitator key.")


class Sharing(StrEnum):
    private = "private"
    community = "community"
    open = "open"


@app.command()
def register(
    area: str = typer.Option(..., help="The named area the device is in, e.g. a neighbourhood."),
    kind: str = typer.Option("air", help="air or damp."),
    board: str = typer.Option("ESP32_GENERIC", help="ESP32_GENERIC, RPI_PICO_W, RPI_PICO2_W, ..."),
    transport: str = typer.Option("mqtt", help="mqtt, lorawan or http."),
    placement: str = typer.Option("outdoor", help="indoor or outdoor."),
    label: str = typer.Option("", help="A name the resident chose."),
    latitude: float = typer.Option(None, "--lat", help="Exact latitude: kept private."),
    longitude: float = typer.Option(None, "--lon", help="Exact longitude: kept private."),
    sharing: Sharing = typer.Option(..., help="private, community or open: what the resident chose."),
    purpose: list[str] = typer.Option(["community_awareness"], help="A purpose the resident agreed to (repeat)."),
    location_release: str = typer.Option("area", help="none, area or h3 (a map cell)."),
    h3_resolution: int = typer.Option(None, help="Map cell size for h3 (0 coarsest to 9)."),
    collected_by: str = typer.Option(..., help="Who took the consent: facilitator or group."),
    method: str = typer.Option("workshop", help="How consent was collected: workshop, online, paper."),
    consent_version: str = typer.Option(None, help="The consent text the resident saw (default: the newest)."),
    hub: str = HubOpt,
    key: str = KeyOpt,
) -> None:
    """Register a device with the hub, together with the consent its owner gave."""
    if consent_version is None:
        texts = call(hub, "GET", "/api/v1/consent/texts")
        if not texts:
            abort("The hub has no consent text yet: ask the hub operator to publish one.")
        consent_version = texts[-1]["version"]
    body = {
        "device": {
            "kind": kind,
            "board": board,
            "transport": transport,
            "placement": placement,
            "area": area,
            "label": label,
            "latitude": latitude,
            "longitude": longitude,
        },
        "agreement": {
            "consent_version": consent_version,
            "sharing": sharing.value,
            "purposes": purpose,
            "location_release": location_release,
            "location_h3_resolution": h3_resolution,
            "collection_method": method,
            "collected_by": collected_by,
        },
    }
    reg = call(hub, "POST", "/api/v1/devices", key=key, json=body)
    device_id = reg["device"]["public_id"]
    console.print(f"✓ Registered [bold]{device_id}[/bold] in {area}, sharing: {sharing.value}.", highlight=False)
    console.print("  Keep these safe: they are shown only now.", highlight=False)
    console.print(f"  Device secret  {reg['device_secret']}", highlight=False)
    console.print(f"  Owner token    {reg['owner_token']}", highlight=False)
    console.print(
        f"  The device publishes to sensing/v1/{device_id}/up (MQTT user {device_id}, password: the device secret).",
        highlight=False,
    )
