"""The resident's private page (`/devices/{id}#token=…`), in a real headless Chromium against a real hub process:
what a resident sees, the keys it refuses, withdrawal and erasure, and the token kept out of logs and the address."""

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from cli.roster import PlannedDevice
from cli.workshop_labels import private_page
from hub.agreement_words import agreed
from hub.pages.private import CONTENT_SECURITY_POLICY
from tests.hub_process import RunningHub, start_hub, stop_hub
from tests.services import publish, wait_until

NOW = int(time.time())
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
NO_TOKEN = "This page needs the key printed on your label. Open this page from the QR code on your label."
REFUSED = ("This key does not open this device's page. Scan the QR code on your label again; if that does not work, "
           "ask the people who ran your workshop.")  # fmt: skip
UNREACHABLE = ("The hub cannot be reached just now. Check that your phone is online (on the hub's network, if it is "
               "a local one), then try again.")  # fmt: skip
NO_READINGS = "The hub holds no readings from your sensor."
WITHDRAWN = ("Your readings have left every page, download and feed of the hub, and it refuses new readings from "
             "your sensor.")  # fmt: skip


def on_the_page(t: int | str) -> str:
    """A time as the page shows it: the browser runs on UTC (tests/conftest.py)."""
    at = datetime.fromtimestamp(t, UTC) if isinstance(t, int) else datetime.fromisoformat(t).astimezone(UTC)
    return f"{at.day} {MONTHS[at.month - 1]} {at.year}, {at:%H:%M}"


def register(hub: RunningHub, key: str, **agreement: Any) -> dict[str, Any]:
    body = {
        "device": {"kind": "air", "board": "ESP32_GENERIC", "transport": "mqtt", "placement": "outdoor",
                   "area": "easton", "label": "front garden", "latitude": 51.4613, "longitude": -2.5647},
        "agreement": {"consent_version": "2026-11", "sharing": "open", "purposes": ["community_awareness", "research"],
                      "location_release": "area", "collection_method": "workshop",
                      "collected_by": "Easton workshop team"} | agreement,
    }  # fmt: skip
    response = httpx.post(f"{hub.url}/api/v1/devices", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    return response.json()


def device_id(reg: dict[str, Any]) -> str:
    return reg["device"]["public_id"]


def owner_api(hub: RunningHub, reg: dict[str, Any], path: str) -> Any:
    response = httpx.get(f"{hub.url}/api/v1/devices/{device_id(reg)}{path}",
                         headers={"Authorization": f"Bearer {reg['owner_token']}"})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def send(hub: RunningHub, reg: dict[str, Any], records: list[dict[str, Any]]) -> httpx.Response:
    """What the device sends over HTTP ingest, with its secret."""
    return httpx.post(f"{hub.url}/api/v1/ingest", json=records,
                      headers={"Authorization": f"Bearer {reg['device_secret']}"})  # fmt: skip


def open_page(browser, url: str) -> str:
    """Open the page, as scanning a label does, and wait until it has loaded the device or said what is wrong;
    which of the two."""
    browser.get("about:blank")  # a new page, not a jump within the one open (tested on its own)
    browser.get(url)
    WebDriverWait(browser, 15).until(lambda b: shown(b, "content") or shown(b, "problem"))
    return "content" if shown(browser, "content") else "problem"


def shown(browser, element_id: str) -> bool:
    found = browser.find_elements(By.ID, element_id)
    return bool(found) and found[0].is_displayed()


def text(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def items(browser, list_id: str) -> list[str]:
    return [item.text for item in browser.find_elements(By.CSS_SELECTOR, f"#{list_id} li")]


def table(browser) -> list[list[str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#readings tbody tr")
    return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")] for row in rows]


def click(browser, element_id: str) -> None:
    browser.find_element(By.ID, element_id).click()


def wait_for_text(browser, element_id: str, expected: str) -> None:
    try:
        WebDriverWait(browser, 15).until(lambda b: text(b, element_id) == expected)
    except Exception:
        assert text(browser, element_id) == expected  # shows what the page said instead


def test_the_page_is_served_with_headers_that_keep_the_key_private(running_hub, facilitator_key):
    reg = register(running_hub, facilitator_key)

    page = httpx.get(f"{running_hub.url}/devices/{device_id(reg)}")
    unknown = httpx.get(f"{running_hub.url}/devices/air-nosuchdevice")
    script = httpx.get(f"{running_hub.url}/assets/private-page.js")

    expected = {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "content-type": "text/html; charset=utf-8",
    }
    assert CONTENT_SECURITY_POLICY == ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    for response, status in ((page, 200), (unknown, 404)):
        assert response.status_code == status
        assert {name: response.headers[name] for name in expected} == expected
    assert f'data-device="{device_id(reg)}"' in page.text
    assert "<h1>No such sensor</h1>" in unknown.text
    assert (script.status_code, script.headers["content-type"], script.headers["x-content-type-options"]) == (
        200, "text/javascript; charset=utf-8", "nosniff")
    assert httpx.get(f"{running_hub.url}/assets/private.py").status_code == 404
    assert "/devices/{public_id}" not in httpx.get(f"{running_hub.url}/openapi.json").json()["paths"]


def test_the_resident_sees_their_sensor_agreement_status_and_latest_readings(running_hub, facilitator_key, page):
    reg = register(running_hub, facilitator_key)
    device = device_id(reg)
    accepted = send(running_hub, reg, [{"seq": 1, "t": NOW - 120, "v": {"temperature": 21.4, "humidity": 63.5}},
                                       {"seq": 2, "t": NOW - 60, "v": {"pm2_5": 12.5}}])  # fmt: skip
    assert accepted.json()["accepted"] == 3
    status = {"state": "online", "faults": [{"sensor": "sps30@0x69", "fault": "not_ready",
                                             "message": "no new measurement"}], "dropped": 4}  # fmt: skip
    publish(f"mqtt://127.0.0.1:{running_hub.mqtt_port}", f"sensing/v1/{device}/status", [json.dumps(status).encode()],
            username=device, password=reg["device_secret"])  # fmt: skip
    wait_until(lambda: owner_api(running_hub, reg, "/private")["status"] is not None, "the status stored")
    received = owner_api(running_hub, reg, "/private")["status"]["received_at"]

    page.get_log("browser")  # what earlier tests left
    assert open_page(page, f"{running_hub.url}/devices/{device}#token={reg['owner_token']}") == "content"

    assert page.get_log("browser") == []  # no error, nothing the Content-Security-Policy blocked
    assert page.find_element(By.TAG_NAME, "h1").text == f"Air sensor {device}"
    assert page.title == f"Your sensor {device}"
    assert text(page, "where") == "Outdoors, in easton (front garden)"
    assert text(page, "registered-by") == "Easton workshop team"
    assert text(page, "consent-state") == "Your consent is in force."
    today = datetime.now(UTC).date().isoformat()
    assert items(page, "agreed") == [
        "Your readings are open data: anyone may download and reuse them, with credit to the community.",
        "They are published with your area, easton, never your address.",
        "They are published with the time they were measured.",
        "They may be used for: showing the community what its air and homes are like; "
        "research by universities and community researchers.",
        "They are shared until you withdraw.",
        f"You agreed on {today} to consent text 2026-11, with Easton workshop team.",
    ]
    assert text(page, "status") == (f"Online: it is connected and sending readings. Last heard from: "
                                    f"{on_the_page(received)}. 4 readings were lost because its memory was full.")
    assert items(page, "faults") == ["Sensor sps30@0x69 did not give a good reading (no new measurement)."]
    newest_first = [r["quantity"] for r in owner_api(running_hub, reg, "/readings?order=newest")["readings"]]
    assert newest_first[0] == "pm2_5" and sorted(newest_first[1:]) == ["humidity", "temperature"]
    rows = {
        "pm2_5": ["Particulate matter up to 2.5 µm", "12.5", "µg/m³", on_the_page(NOW - 60)],
        "temperature": ["Air temperature", "21.4", "°C", on_the_page(NOW - 120)],
        "humidity": ["Relative humidity", "63.5", "%", on_the_page(NOW - 120)],
    }
    assert table(page) == [rows[quantity] for quantity in newest_first]
    assert [th.text for th in page.find_elements(By.CSS_SELECTOR, "#readings thead th")] == [
        "What", "Value", "Unit", "Measured"]

    # The key is gone from the address bar, is nowhere on the page, and a reload of the tab still opens it.
    assert page.current_url == f"{running_hub.url}/devices/{device}"
    assert reg["owner_token"] not in page.page_source
    assert open_page(page, page.current_url) == "content"
    assert text(page, "consent-state") == "Your consent is in force."
    # The browser never sent it: the hub's access log has the page, never the key.
    log = running_hub.log()
    assert f'"GET /devices/{device} HTTP/1.1" 200' in log
    assert reg["owner_token"] not in log


@pytest.mark.parametrize("agreement", [
    {"sharing": "private", "purposes": ["home_advice"], "location_release": "none"},
    {"sharing": "community", "purposes": ["education"], "retention_days": 90},
    {"sharing": "open", "purposes": ["research", "council_evidence"], "location_release": "h3",
     "location_h3_resolution": 7, "time_release": "hour", "retention_days": 365},
], ids=["private", "community", "open-h3-hour"])  # fmt: skip
def test_the_page_words_an_agreement_as_the_label_does(running_hub, facilitator_key, page, agreement):
    reg = register(running_hub, facilitator_key, **agreement)

    open_page(page, f"{running_hub.url}/devices/{device_id(reg)}#token={reg['owner_token']}")

    assert items(page, "agreed") == agreed(reg["agreement"], "easton")
    assert text(page, "status") == "Your sensor has not told the hub how it is doing yet."
    assert (shown(page, "readings"), text(page, "no-readings")) == (False, NO_READINGS)


def test_the_labels_qr_link_opens_the_page_the_hub_serves(running_hub, facilitator_key, page):
    reg = register(running_hub, facilitator_key)
    planned = PlannedDevice(row=2, name="Sam", area="easton", placement="outdoor", kind="air", board="ESP32_GENERIC")
    planned.record_registration(running_hub.url + "/", reg)

    link = private_page(planned)

    assert link == f"{running_hub.url}/devices/{device_id(reg)}#token={reg['owner_token']}"
    assert open_page(page, link) == "content"
    assert page.find_element(By.TAG_NAME, "h1").text == f"Air sensor {device_id(reg)}"
    assert items(page, "agreed") == agreed(reg["agreement"], "easton")


def test_without_a_key_or_with_a_wrong_one_the_page_says_so(running_hub, facilitator_key, page):
    reg, other = register(running_hub, facilitator_key), register(running_hub, facilitator_key)
    url = f"{running_hub.url}/devices/{device_id(reg)}"

    assert open_page(page, url) == "problem"
    assert text(page, "problem") == NO_TOKEN
    assert not shown(page, "content")

    for wrong in (other["owner_token"], "own_madeup", reg["device_secret"], facilitator_key):
        assert open_page(page, f"{url}#token={wrong}") == "problem", wrong
        assert text(page, "problem") == REFUSED
        assert page.current_url == url
        assert wrong not in page.page_source
    # A refused key is not kept: opening the page again asks for the label's QR code.
    assert open_page(page, url) == "problem"
    assert text(page, "problem") == NO_TOKEN
    # Scanning the right label with the page still open changes only the address's fragment: the page opens.
    page.get(f"{url}#token={reg['owner_token']}")
    WebDriverWait(page, 15).until(lambda b: shown(b, "content"))
    assert (shown(page, "problem"), text(page, "consent-state")) == (False, "Your consent is in force.")
    assert page.current_url == url


def test_an_unknown_device(running_hub, page):
    page.get(f"{running_hub.url}/devices/air-nosuchdevice#token=own_whatever")

    assert page.find_element(By.TAG_NAME, "h1").text == "No such sensor"
    assert page.find_element(By.TAG_NAME, "main").text == (
        "No such sensor\nThis hub has no sensor called air-nosuchdevice. Check the address against the one written "
        "on your label, or scan its QR code again.")


def test_withdrawing_consent_from_the_page(running_hub, facilitator_key, page):
    reg = register(running_hub, facilitator_key)
    device = device_id(reg)
    assert send(running_hub, reg, [{"seq": 1, "t": NOW - 60, "v": {"temperature": 19.5}}]).status_code == 200
    open_page(page, f"{running_hub.url}/devices/{device}#token={reg['owner_token']}")

    click(page, "withdraw")
    assert shown(page, "withdraw-confirm") and not shown(page, "withdraw")
    assert text(page, "withdraw-question") == ("Withdraw your consent? This cannot be undone from this page: to share "
                                               "again, you would give a new agreement, for example at a workshop.")
    click(page, "withdraw-no")  # changed their mind: nothing happens
    assert shown(page, "withdraw") and not shown(page, "withdraw-confirm")
    assert owner_api(running_hub, reg, "/agreements")[-1]["status"] == "active"

    click(page, "withdraw")
    click(page, "withdraw-yes")

    wait_for_text(page, "result", "Your consent is withdrawn. Your readings have left every page, download and feed "
                                  "of the hub.")  # fmt: skip
    [agreement] = owner_api(running_hub, reg, "/agreements")
    assert agreement["status"] == "withdrawn"
    assert httpx.get(f"{running_hub.url}/api/v1/devices/{device}").json()["consent_active"] is False
    assert text(page, "consent-state") == (f"You withdrew your consent on {on_the_page(agreement['withdrawn_at'])}. "
                                           f"{WITHDRAWN}")  # fmt: skip
    assert not shown(page, "withdraw-choice")
    assert table(page) == [["Air temperature", "19.5", "°C", on_the_page(NOW - 60)]]  # still theirs to see
    # What the page says is what the hub does: a new reading is refused.
    refused = send(running_hub, reg, [{"seq": 2, "t": NOW - 30, "v": {"temperature": 19.6}}])
    assert refused.status_code == 403
    # And it says so again when opened later.
    open_page(page, page.current_url)
    assert text(page, "consent-state").endswith(WITHDRAWN)


def test_erasing_the_readings_from_the_page(running_hub, facilitator_key, page):
    reg = register(running_hub, facilitator_key)
    records = [{"seq": seq, "t": NOW - 60 * seq, "v": {"temperature": 20 + seq}} for seq in (1, 2, 3)]
    assert send(running_hub, reg, records).json()["accepted"] == 3
    open_page(page, f"{running_hub.url}/devices/{device_id(reg)}#token={reg['owner_token']}")
    assert len(table(page)) == 3

    click(page, "erase")
    assert text(page, "erase-question") == ("Erase all your readings? They are deleted for good: nobody can bring "
                                            "them back.")  # fmt: skip
    click(page, "erase-yes")

    wait_for_text(page, "result", "3 readings erased.")
    assert owner_api(running_hub, reg, "/readings")["readings"] == []
    assert (shown(page, "readings"), text(page, "no-readings")) == (False, NO_READINGS)
    assert text(page, "consent-state") == "Your consent is in force."  # erasing is not withdrawing


def test_a_hub_that_cannot_be_reached(tmp_path, page):
    proc, hub = start_hub(tmp_path)
    try:
        reg = register(hub, hub.operator_key)
        assert open_page(page, f"{hub.url}/devices/{device_id(reg)}#token={reg['owner_token']}") == "content"
    finally:
        stop_hub(proc)

    click(page, "withdraw")
    click(page, "withdraw-yes")

    wait_for_text(page, "result", UNREACHABLE)
    assert "problem" in page.find_element(By.ID, "result").get_attribute("class")
