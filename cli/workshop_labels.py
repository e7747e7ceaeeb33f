"""`sensing workshop labels`: a printable page with a label for each provisioned device of a plan.

A label says the device's id, has a QR code to the resident's private page, says in plain words what the resident
agreed to, and how to withdraw. It is one HTML page with print CSS (A4, four labels a page): any browser prints it,
and a workshop laptop needs nothing more installed.

The private page is `{hub}/devices/{id}#token={owner token}`, served by the hub (hub/pages): the resident's device,
what they agreed to, its last status and latest readings, and buttons to withdraw consent and erase the readings.
The token goes after '#', so a browser never sends it: it stays out of the hub's access log and of any other
site's Referer. The page's script reads it there and takes it out of the address bar.

What the resident agreed to is worded by hub.agreement_words, for the labels and the page alike.
"""

import base64
import html
import io
import os
from pathlib import Path

import segno
import typer
from rich.markup import escape

from cli.app import abort, console
from cli.roster import PLAN_FILE, Plan, PlannedDevice
from hub.agreement_words import KINDS, agreed


def private_page(device: PlannedDevice) -> str:
    return f"{device.hub}/devices/{device.device_id}#token={device.owner_token}"


def withdraw_command(device: PlannedDevice) -> str:
    return (f'curl -X POST -H "Authorization: Bearer {device.owner_token}" '
            f"{device.hub}/api/v1/devices/{device.device_id}/withdraw")  # fmt: skip


def qr_png(url: str) -> str:
    """The QR code as a PNG data URI: 8 pixels a module, so it prints sharp at the label's size."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=8, border=4)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def label(device: PlannedDevice, ask: str | None) -> str:
    e = html.escape
    kind = KINDS[device.kind]
    items = "".join(f"<li>{e(sentence)}</li>" for sentence in agreed(device.agreement or {}, device.area))
    ask_line = f"<p>Or ask {e(ask)} to do it for you.</p>" if ask else ""
    return f"""<section class="label" id="{e(device.device_id or '')}">
<h2>{e(device.device_id or '')}</h2>
<p class="who">For {e(device.name)}: {kind}, {e(device.placement)}, in {e(device.area)}</p>
<img class="qr" alt="QR code to your private page" src="{qr_png(private_page(device))}">
<p class="page">Your private page: <code>{e(private_page(device))}</code></p>
<h3>What you agreed to</h3>
<ul>{items}</ul>
<h3>To withdraw, at any time</h3>
<p>Withdrawing takes effect at once: your readings leave every page, download and feed of the hub.</p>
<p>Scan the QR code to open your private page, and press "Withdraw consent" there.</p>
<p>Or run: <code>{e(withdraw_command(device))}</code></p>
{ask_line}
</section>
"""


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; }
.sheet { display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; padding: 8mm; }
.label { border: 1px dashed #888; padding: 4mm; font-size: 9pt; break-inside: avoid; page-break-inside: avoid; }
.label h2 { font-family: monospace; font-size: 14pt; margin: 0 0 1mm; }
.label h3 { font-size: 10pt; margin: 2mm 0 1mm; }
.label ul { margin: 0; padding-left: 4mm; }
.qr { float: right; width: 32mm; height: 32mm; image-rendering: pixelated; margin-left: 2mm; }
code { font-size: 7pt; word-break: break-all; }
@page { size: A4; margin: 0; }
@media print { .label { height: 128mm; overflow: hidden; } }
"""


def page(devices: list[PlannedDevice], ask: str | None) -> str:
    labels = "".join(label(device, ask) for device in devices)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sensor labels</title><style>{STYLE}</style></head>
<body><main class="sheet">
{labels}</main></body>
</html>
"""


def labels(
    plan_dir: Path = typer.Argument(..., help="The plan folder made by `sensing workshop prepare`."),
    out: Path = typer.Option(Path("labels.html"), "--out", help="The HTML page to write."),
    ask: str = typer.Option(None, "--ask", help="Who residents can ask to withdraw for them, e.g. a name and phone."),
) -> None:
    """Write a printable page with a label for each provisioned device: id, QR code, consent, how to withdraw."""
    if not (plan_dir / PLAN_FILE).exists():
        abort(escape(f"There is no plan in {plan_dir}: make one with "
                     f"`sensing workshop prepare ROSTER.csv --out {plan_dir}`."))
    plan = Plan.load(plan_dir)
    ready = [device for device in plan.devices if device.state == "provisioned"]
    waiting = [device for device in plan.devices if device.state != "provisioned"]
    if not ready:
        abort(escape(f"No device in {plan_dir} is provisioned yet, so there is no label to print."))
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner tokens: not for others to read
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(page(ready, ask))
    console.out(f"✓ {len(ready)} labels written to {out}: open it in a browser and print it.", highlight=False)
    if waiting:
        later = ", ".join(f"row {d.row} ({d.name}, {d.state})" for d in waiting)
        console.out(f"  No label yet (not provisioned): {later}.", highlight=False)
    console.out("  Each label holds its resident's owner token: hand it to that resident only.", highlight=False)
