"""The resident's private page: `GET /devices/{id}`, opened from the QR code on their label.

The label's address is `/devices/{id}#token={owner token}`. The part after '#' never leaves the browser, so the
hub serves the same page to everyone: the page's script (private-page.js) reads the token, takes it out of the
address bar, and calls the owner's API with it (`/api/v1/devices/{id}/private`, `/agreements`, `/readings`,
`/withdraw`). The page carries no data of its own beyond what anyone may see of the device (its id and kind).
"""

import functools
import html
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from firmware.quantities import QUANTITIES
from hub import agreement_words, devices
from hub.api.deps import SessionDep

router = APIRouter(include_in_schema=False)
ASSETS = {"private-page.js": "text/javascript", "private-page.css": "text/css", "icon.svg": "image/svg+xml"}
HERE = Path(__file__).parent

# No script but the hub's own file, no style but its own sheet, no other site, no framing; the page talks only
# to the hub's API. A page that holds a key sends no Referer and is never cached.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

STATUS = {
    "online": "Online: it is connected and sending readings.",
    "offline": "Offline: it has stopped, or lost its connection.",
    "asleep": "Asleep between readings, to save its battery.",
    "config_invalid": "It refused a change to its settings.",
}


def wording() -> dict[str, Any]:
    """Everything the page's script says that comes from the hub's vocabulary."""
    quantities = {name: q["label"] for name, q in QUANTITIES.items()}
    return agreement_words.wording() | {"status": STATUS, "quantities": quantities}


def script_json(data: dict[str, Any]) -> str:
    """JSON safe inside a <script type="application/json"> element (it cannot close the element)."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(title: str, main: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>{html.escape(title)}</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/private-page.css">
</head>
<body>
{main}
</body>
</html>
"""


def unknown_device(public_id: str) -> str:
    return page("No such sensor", f"""<main>
<h1>No such sensor</h1>
<p>This hub has no sensor called <strong class="id">{html.escape(public_id)}</strong>.
Check the address against the one written on your label, or scan its QR code again.</p>
</main>""")


@functools.cache
def packaged(name: str) -> bytes:
    """A file of this folder (the page's template and assets), read once."""
    return (HERE / name).read_bytes()


@functools.cache
def words_json() -> str:
    """wording() for the page's script, made once: the hub's vocabulary does not change while it runs."""
    return script_json(wording())


def private_page(public_id: str, kind: str) -> str:
    e = html.escape
    template = packaged("private-page.html").decode("utf-8")
    main = (template.replace("{device}", e(public_id)).replace("{kind}", e(agreement_words.KINDS.get(kind, kind)))
            .replace("{words}", words_json()))  # fmt: skip
    return page(f"Your sensor {public_id}", main)


@router.get("/devices/{public_id}", response_class=HTMLResponse)
def resident_page(public_id: str, session: SessionDep) -> HTMLResponse:
    """The resident's private page; the owner token stays in the address's fragment, which is never sent here."""
    try:
        device = devices.get(session, public_id)
    except devices.DeviceNotFound:
        return HTMLResponse(unknown_device(public_id), status_code=404, headers=HEADERS)
    return HTMLResponse(private_page(device.public_id, device.kind), headers=HEADERS)


@router.get("/assets/{name}")
def asset(name: str) -> Response:
    """The page's script, style sheet and icon, served by the hub itself: the page works offline on a LAN."""
    if name not in ASSETS:
        raise HTTPException(404, f"there is no asset '{name}'")
    return Response(packaged(name), media_type=ASSETS[name],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})  # fmt: skip
