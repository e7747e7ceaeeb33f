"""`sensing workshop`: prepare and run a community workshop, and print each resident's label."""

import typer

from cli import workshop_labels, workshop_prepare, workshop_run

app = typer.Typer(
    help="Workshops: a roster in, many boards flashed and registered at once, a label for each resident.",
    no_args_is_help=True,
)
app.command("prepare")(workshop_prepare.prepare)
app.command("run")(workshop_run.run)
app.command("labels")(workshop_labels.labels)
