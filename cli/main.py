"""The `sensing` command."""

import typer

from cli import data, device, hub, simulate, workshop

app = typer.Typer(
    help="Citizen sensing toolkit: run a community hub, set up sensors, and get open data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(hub.app, name="hub")
app.add_typer(device.app, name="device")
app.add_typer(workshop.app, name="workshop")
app.add_typer(data.app, name="data")
app.command("simulate")(simulate.simulate)

if __name__ == "__main__":
    app()
