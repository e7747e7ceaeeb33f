"""`sensing workshop labels`: devices registered with a real hub, their labels read back, their QR codes decoded."""

import base64
import io
import shlex
import stat
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from cli.roster import Plan
from tests.hub_process import RunningHub

runner = CliRunner()
ROSTER = (
    "name,contact,area,placement,kind,board,sharing,purposes\n"
    "Sam,,easton,outdoor,air,ESP32_GENERIC,open,community_awareness;research\n"
    "Jo & Bo,,easton,indoor,damp,RPI_PICO_W,private,home_advice\n"
    "Ali,,knowle,outdoor,air,ESP32_GENERIC_C3,open,research;council_evidence\n"
    "Kim,,knowle,outdoor,air,ESP32_GENERIC,,\n"
)


class Labels(HTMLParser):
    """Each label's text, a line per heading, paragraph or list item; and its QR code image."""

    BLOCKS = ("h2", "h3", "p", "li")

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[dict] = []
        self.block: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("class") == "label":
            self.labels.append({"id": attrs["id"], "lines": [], "qr": []})
        elif tag in self.BLOCKS and self.labels:
            self.block = []
        elif tag == "img" and self.labels:
            self.labels[-1]["qr"].append((attrs["alt"], attrs["src"]))

    def handle_endtag(self, tag):
        if tag in self.BLOCKS and self.block is not None:
            self.labels[-1]["lines"].append(" ".join("".join(self.block).split()))
            self.block = None

    def handle_data(self, data):
        if self.block is not None:
            self.block.append(data)


def read_labels(path: Path) -> list[dict]:
    parser = Labels()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.labels


def decode_qr(data_uri: str) -> list[str]:
    png = base64.b64decode(data_uri.removeprefix("data:image/png;base64,"))
    return [result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


AGREEMENTS = {
    "Sam": {"location_release": "area"},
    "Jo & Bo": {"location_release": "none"},
    "Ali": {"location_release": "h3", "location_h3_resolution": 7, "time_release": "hour", "retention_days": 365},
}


def provision(hub: RunningHub, plan_dir: Path) -> Plan:
    """What `sensing workshop run` does to the plan: register each of the first three with the hub, and move on."""
    plan = Plan.load(plan_dir)
    for device in plan.devices[:3]:
        body = {
            "device": {"kind": device.kind, "board": device.board, "transport": "mqtt",
                       "placement": device.placement, "area": device.area, "latitude": 51.46, "longitude": -2.56},
            "agreement": {"consent_version": "2026-11", "sharing": device.sharing, "purposes": device.purposes,
                          "collection_method": "workshop", "collected_by": "Easton workshop, Dee"}
                         | AGREEMENTS[device.name],
        }  # fmt: skip
        response = httpx.post(f"{hub.url}/api/v1/devices", json=body,
                              headers={"Authorization": f"Bearer {hub.operator_key}"})  # fmt: skip
        assert response.status_code == 201, response.text
        device.advance("deployed")
        device.record_registration(hub.url, response.json())
        device.advance("provisioned")
    plan.save(plan_dir)
    return plan


@pytest.fixture
def plan_dir(tmp_path) -> Path:
    (tmp_path / "roster.csv").write_text(ROSTER)
    result = runner.invoke(app, ["workshop", "prepare", str(tmp_path / "roster.csv"), "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.stderr
    return tmp_path / "plan"


def test_a_label_for_each_provisioned_device(running_hub, plan_dir, tmp_path):  # noqa: F811
    plan = provision(running_hub, plan_dir)
    sam, jo, ali, _ = plan.devices
    out = tmp_path / "labels.html"

    result = runner.invoke(app, ["workshop", "labels", str(plan_dir), "--out", str(out),
                                 "--ask", "Dee on 07700 900456"])  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ 3 labels written to {out}: open it in a browser and print it.\n"
        "  No label yet (not provisioned): row 5 (Kim, planned).\n"
        "  Each label holds its resident's owner token: hand it to that resident only.\n"
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    today = datetime.now(UTC).date().isoformat()
    assert {d.agreement["granted_at"][:10] for d in (sam, jo, ali)} == {today}

    def page(d):
        return f"{running_hub.url}/devices/{d.device_id}#token={d.owner_token}"

    def withdraw(d):
        return (f'Or run: curl -X POST -H "Authorization: Bearer {d.owner_token}" '
                f"{running_hub.url}/api/v1/devices/{d.device_id}/withdraw")  # fmt: skip

    ending = [
        f"You agreed on {today} to consent text 2026-11, with Easton workshop, Dee.",
        "To withdraw, at any time",
        "Withdrawing takes effect at once: your readings leave every page, download and feed of the hub.",
        'Scan the QR code to open your private page, and press "Withdraw consent" there.',
    ]
    labels = read_labels(out)
    assert [label["id"] for label in labels] == [sam.device_id, jo.device_id, ali.device_id]
    assert [label["lines"] for label in labels] == [
        [
            sam.device_id,
            "For Sam: Air sensor, outdoor, in easton",
            f"Your private page: {page(sam)}",
            "What you agreed to",
            "Your readings are open data: anyone may download and reuse them, with credit to the community.",
            "They are published with your area, easton, never your address.",
            "They are published with the time they were measured.",
            "They may be used for: showing the community what its air and homes are like; "
            "research by universities and community researchers.",
            "They are shared until you withdraw.",
            *ending,
            withdraw(sam),
            "Or ask Dee on 07700 900456 to do it for you.",
        ],
        [
            jo.device_id,
            "For Jo & Bo: Damp sensor, indoor, in easton",
            f"Your private page: {page(jo)}",
            "What you agreed to",
            "Only you can see your readings.",
            "They may be used for: advice to the resident about their own home (damp, ventilation).",
            *ending,
            withdraw(jo),
            "Or ask Dee on 07700 900456 to do it for you.",
        ],
        [
            ali.device_id,
            "For Ali: Air sensor, outdoor, in knowle",
            f"Your private page: {page(ali)}",
            "What you agreed to",
            "Your readings are open data: anyone may download and reuse them, with credit to the community.",
            "They are published with a map cell (size 7, where 0 is a continent and 9 a few blocks), "
            "never your address.",
            "Their times are published rounded down to the hour.",
            "They may be used for: research by universities and community researchers; "
            "evidence for the council's policies and services.",
            "Readings older than 365 days are no longer shared.",
            *ending,
            withdraw(ali),
            "Or ask Dee on 07700 900456 to do it for you.",
        ],
    ]
    assert "Jo &amp; Bo" in out.read_text()
    for label, device in zip(labels, (sam, jo, ali), strict=True):
        [(alt, src)] = label["qr"]
        assert alt == "QR code to your private page"
        assert decode_qr(src) == [page(device)]


def test_the_label_s_token_and_withdrawal_work_at_the_hub(running_hub, plan_dir, tmp_path):  # noqa: F811
    sam = provision(running_hub, plan_dir).devices[0]
    out = tmp_path / "labels.html"
    runner.invoke(app, ["workshop", "labels", str(plan_dir), "--out", str(out)])
    label = read_labels(out)[0]
    token = decode_qr(label["qr"][0][1])[0].split("#token=")[1]

    private = httpx.get(f"{running_hub.url}/api/v1/devices/{sam.device_id}/private",
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert (private.status_code, private.json()["public_id"]) == (200, sam.device_id)

    curl, _, method, _, header, url = shlex.split(label["lines"][-1].removeprefix("Or run: "))
    assert (curl, method) == ("curl", "POST")
    name, value = header.split(": ", 1)
    withdrawn = httpx.request(method, url, headers={name: value})
    assert (withdrawn.status_code, withdrawn.json()["withdrawn"]) == (200, 1)


def test_without_a_plan_or_a_provisioned_device(plan_dir, tmp_path):
    result = runner.invoke(app, ["workshop", "labels", str(tmp_path / "nowhere")])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ There is no plan in {tmp_path / 'nowhere'}: make one with "
        f"`sensing workshop prepare ROSTER.csv --out {tmp_path / 'nowhere'}`.\n"
    )

    result = runner.invoke(app, ["workshop", "labels", str(plan_dir), "--out", str(tmp_path / "labels.html")])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ No device in {plan_dir} is provisioned yet, so there is no label to print.\n"
    assert not (tmp_path / "labels.html").exists()
