"""`sensing data`: download open data."""

from datetime import datetime
from pathlib import Path

import httpx
import typer

from cli.app import abort, console
from cli.hubclient import DEFAULT_HUB, explain

app = typer.Typer(help="Open data: download readings for an area, time range and quantities.", no_args_is_help=True)


@app.command()
def download(
    output: Path = typer.Option(..., "--output", "-o", help="The CSV file to write."),
    area: str = typer.Option(None, help="Only this area."),
    quantity: str = typer.Option(None, help="Only this quantity, e.g. pm2_5."),
    since: datetime = typer.Option(None, help="Measured at or after (ISO 8601)."),
    until: datetime = typer.Option(None, help="Measured before (ISO 8601)."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
) -> None:
    """Download open readings as CSV, with the licence they are published under."""
    params = {"area": area, "quantity": quantity, "since": since, "until": until}
    params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items() if v is not None}
    partial = output.with_name(output.name + ".part")
    rows = 0
    try:
        with httpx.stream("GET", f"{hub.rstrip('/')}/api/v1/open/readings.csv", params=params, timeout=60) as resp:
            if resp.is_error:
                resp.read()
                abort(explain(resp))
            licence = resp.headers.get("X-Licence", "see the hub")
            with partial.open("wb") as out, console.status("Downloading open data…"):
                for chunk in resp.iter_bytes():
                    out.write(chunk)
                    rows += chunk.count(b"\n")
    except httpx.ConnectError:
        abort(f"The hub at {hub} is not reachable: is it running, and is the address right?")
    except httpx.TransportError:
        abort(f"The download from {hub} was interrupted: run the same command again.")
    partial.replace(output)
    console.print(f"✓ {max(rows - 1, 0)} readings written to {output} (licence: {licence}).", highlight=False)
