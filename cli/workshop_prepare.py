"""`sensing workshop prepare`: a roster in, a plan of devices out (see cli/roster.py).

Run again on the same plan folder (the roster changed, a resident joined), it keeps every device that got
further than planned, so a device already registered is never planned, nor registered, again.
"""

from collections import Counter
from pathlib import Path

import typer
from rich.markup import escape

from cli.app import abort, console, err_console
from cli.roster import PLAN_FILE, Plan, PlannedDevice, RosterError, digest, merge, read_roster


def counted(values: list[str]) -> str:
    return ", ".join(f"{count} {value}" for value, count in sorted(Counter(values).items()))


def who(devices: list[PlannedDevice]) -> str:
    return ", ".join(f"row {device.row} ({device.name})" for device in devices)


def prepare(
    roster: Path = typer.Argument(..., help="The roster CSV: one row per resident's device."),
    out: Path = typer.Option(..., "--out", help="The plan folder: plan.json is written there."),
) -> None:
    """Check a roster and plan one device per row, for `sensing workshop run` and `labels`."""
    try:
        text = roster.read_text(encoding="utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a BOM
    except FileNotFoundError:
        abort(escape(f"There is no roster at {roster}: start from workshops/roster-template.csv."))
    except UnicodeDecodeError:
        abort(escape(f"{roster} is not UTF-8 text: save it from the spreadsheet as 'CSV UTF-8'."))
    try:
        devices = read_roster(text)
    except RosterError as exc:
        for problem in exc.problems:
            err_console.print(f"[red]✗[/red] {escape(problem)}", highlight=False)
        count = "this problem" if len(exc.problems) == 1 else f"these {len(exc.problems)} problems"
        abort(escape(f"Fix {count} in {roster}, then run this again: nothing was planned."))
    kept: list[PlannedDevice] = []
    if (out / PLAN_FILE).exists():
        devices, lost = merge(Plan.load(out), devices)
        kept = [device for device in devices if device.state != "planned" or device.device_id]
        for device in lost:
            registered = f" as {device.device_id}" if device.device_id else ""
            warning = (f"{device.name} ({device.kind}, {device.area}) is no longer on the roster but is already "
                       f"{device.state}{registered}: kept in the plan.")  # fmt: skip
            err_console.print(f"[yellow]![/yellow] {escape(warning)}", highlight=False)
        devices += lost
    path = Plan(roster.name, digest(text), devices).save(out)
    console.out(f"✓ Planned {len(devices)} devices from {roster.name} in {path}: "
                f"{counted([d.kind for d in devices])}.", highlight=False)  # fmt: skip
    console.out(f"  Boards to bring: {counted([d.board for d in devices])}.", highlight=False)
    if kept:
        console.out(f"  Kept as they were: {', '.join(f'row {d.row} ({d.name}, {d.state})' for d in kept)}.",
                    highlight=False)  # fmt: skip
    waiting = [d for d in devices if d.device_id is None]
    unknown = [("sharing", [d for d in waiting if d.sharing is None]),
               ("purposes", [d for d in waiting if not d.purposes])]  # fmt: skip
    to_ask = [f"{what} for {who(residents)}" for what, residents in unknown if residents]
    if to_ask:
        console.out(f"  To ask at the workshop: {'; '.join(to_ask)}.", highlight=False)
