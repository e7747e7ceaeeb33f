"""Talking to a hub over HTTP, with every failure turned into one plain sentence."""

from collections.abc import Callable
from typing import Any, NoReturn

import httpx

from cli.app import abort

DEFAULT_HUB = "http://127.0.0.1:8000"


def client(hub: str, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=hub.rstrip("/"), headers=headers, timeout=timeout)


def explain(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if response.status_code == 401:
        return "The hub did not accept the key: check it was copied whole, or ask the hub operator for a new one."
    if response.status_code == 403:
        return f"The hub refused: {detail or 'this key may not do that'}."
    return f"The hub said no ({response.status_code}): {detail or response.text[:200]}."


def call(
    hub: str, method: str, path: str, key: str | None = None, fail: Callable[[str], NoReturn] = abort, **kwargs: Any
) -> Any:
    """Make one request and return its JSON body. On any failure, `fail` gets one plain sentence: by default the
    command ends with it; a workshop run raises it instead, so the other boards go on."""
    try:
        with client(hub, key) as http:
            response = http.request(method, path, **kwargs)
    except httpx.ConnectError:
        fail(f"The hub at {hub} is not reachable: is it running (make run), and is the address right?")
    except httpx.TimeoutException:
        fail(f"The hub at {hub} did not answer in time: check the network and try again.")
    if response.is_error:
        fail(explain(response))
    return response.json()
