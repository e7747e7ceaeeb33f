"""`sensing workshop`: prepare and run a community workshop (issue: CLI for workshops)."""

import typer

app = typer.Typer(
    help="Workshops: a roster in, many boards flashed and registered at once. (On its way: prepare, run, labels.)"
)
