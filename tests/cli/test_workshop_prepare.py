"""`sensing workshop prepare`: a roster CSV in, a plan of devices out; every problem one sentence."""

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.roster import BOARDS, Plan, PlanError

runner = CliRunner()
REPO = Path(__file__).parents[2]
HEADER = "name,contact,area,placement,kind,board,sharing,purposes\n"
ROSTER = HEADER + (
    "Sam,07700 900123,easton,outdoor,air,ESP32_GENERIC,open,community_awareness;research\n"
    "Jo,,easton,indoor,damp,RPI_PICO_W,,\n"
    "\n"
    "Ali,ali@example.org,knowle,Outdoor,AIR,esp32_generic_c3,community,research\n"
)
# What a registration answers (POST /api/v1/devices), as `sensing workshop run` hands it to the plan.
REGISTRATION = {
    "device": {"public_id": "air-sam12345"},
    "device_secret": "dev_secret",
    "owner_token": "own_token",
    "agreement": {"id": 1, "sharing": "open"},
}


def prepare(roster: Path, out: Path):
    return runner.invoke(app, ["workshop", "prepare", str(roster), "--out", str(out)])


def write(tmp_path: Path, text: str, name: str = "roster.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def planned(device: dict) -> dict:
    """A device of plan.json without its history (timestamps)."""
    return {key: value for key, value in device.items() if key != "history"}


def blank(row: int, name: str, area: str, placement: str, kind: str, board: str, contact: str = "",
          sharing: str | None = None, purposes: list[str] | None = None) -> dict:  # fmt: skip
    return {"row": row, "name": name, "area": area, "placement": placement, "kind": kind, "board": board,
            "contact": contact, "sharing": sharing, "purposes": purposes or [], "state": "planned",
            "device_id": None, "device_secret": None, "owner_token": None, "hub": None, "agreement": None}  # fmt: skip


def test_a_roster_becomes_a_plan(tmp_path):
    roster = write(tmp_path, ROSTER)
    out = tmp_path / "plan"

    result = prepare(roster, out)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ Planned 3 devices from roster.csv in {out / 'plan.json'}: 2 air, 1 damp.\n"
        "  Boards to bring: 1 ESP32_GENERIC, 1 ESP32_GENERIC_C3, 1 RPI_PICO_W.\n"
        "  To ask at the workshop: sharing for row 3 (Jo); purposes for row 3 (Jo).\n"
    )
    plan = json.loads((out / "plan.json").read_text())
    assert [planned(device) for device in plan["devices"]] == [
        blank(2, "Sam", "easton", "outdoor", "air", "ESP32_GENERIC", "07700 900123", "open",
              ["community_awareness", "research"]),
        blank(3, "Jo", "easton", "indoor", "damp", "RPI_PICO_W"),
        blank(5, "Ali", "knowle", "outdoor", "air", "ESP32_GENERIC_C3", "ali@example.org", "community", ["research"]),
    ]  # fmt: skip
    assert [device["history"] for device in plan["devices"]] == [[], [], []]
    assert (plan["roster"], plan["format"]) == ("roster.csv", 1)
    assert stat.S_IMODE((out / "plan.json").stat().st_mode) == 0o600


def test_every_problem_is_one_sentence(tmp_path):
    roster = write(tmp_path, HEADER + (
        "Sam,,easton,outdoor,air,ESP32_GENERIC,,\n"
        ",,,garden,co2,ESP8266,public,marketing;research\n"
        "Jo,,knowle,indoor,damp,,,\n"
    ))  # fmt: skip
    out = tmp_path / "plan"

    result = prepare(roster, out)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "✗ row 3: the name is empty: write the resident's name or a nickname",
        "✗ row 3: the area is empty: write the area the device will be in, e.g. easton",
        "✗ row 3: placement 'garden' is not indoor or outdoor",
        "✗ row 3: kind 'co2' is not air or damp",
        "✗ row 3: board 'ESP8266' is not supported: use ESP32_GENERIC, ESP32_GENERIC_S3, ESP32_GENERIC_C3, "
        "RPI_PICO_W or RPI_PICO2_W",
        "✗ row 3: sharing 'public' is not private, community or open (or empty, to ask at the workshop)",
        "✗ row 3: purpose 'marketing' is not one of community_awareness, research, council_evidence, education, "
        "home_advice",
        "✗ row 4: the board is empty: write the board type, e.g. ESP32_GENERIC",
        f"✗ Fix these 8 problems in {roster}, then run this again: nothing was planned.",
    ]
    assert not out.exists()


def test_what_a_resident_typed_is_printed_as_typed(tmp_path):
    roster = write(tmp_path, HEADER + "[b]Sam[/b],,easton,outdoor,air,[red]esp,,\n")
    result = prepare(roster, tmp_path / "plan")
    assert result.stderr.splitlines()[0] == (
        "✗ row 2: board '[RED]ESP' is not supported: use ESP32_GENERIC, ESP32_GENERIC_S3, ESP32_GENERIC_C3, "
        "RPI_PICO_W or RPI_PICO2_W"
    )


def test_a_missing_column_and_one_the_tool_does_not_know(tmp_path):
    roster = write(tmp_path, "name,area,kind,bord,email\nSam,easton,air,ESP32_GENERIC,s@example.org\n")

    result = prepare(roster, tmp_path / "plan")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "✗ the roster has no 'placement' column",
        "✗ the roster has no 'board' column",
        "✗ the roster has a column 'bord' this tool does not know: the columns are name, contact, area, placement, "
        "kind, board, sharing, purposes",
        "✗ the roster has a column 'email' this tool does not know: the columns are name, contact, area, placement, "
        "kind, board, sharing, purposes",
        f"✗ Fix these 4 problems in {roster}, then run this again: nothing was planned.",
    ]


def test_a_roster_with_nobody_on_it(tmp_path):
    roster = write(tmp_path, HEADER + ",,,,,,,\n")
    result = prepare(roster, tmp_path / "plan")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "✗ the roster has no residents: add one row per device under the header",
        f"✗ Fix this problem in {roster}, then run this again: nothing was planned.",
    ]


def test_a_spreadsheets_csv_with_semicolons_and_a_byte_order_mark(tmp_path):
    roster = write(tmp_path, "\ufeffName;Contact;Area;Placement;Kind;Board;Sharing;Purposes\n"
                             "Zoë;;Llanrumney;outdoor;air;RPI_PICO2_W;open;research, education\n")  # fmt: skip

    result = prepare(roster, tmp_path / "plan")

    assert (result.exit_code, result.stderr) == (0, "")
    device = Plan.load(tmp_path / "plan").devices[0]
    assert (device.name, device.area, device.board, device.purposes) == (
        "Zoë", "Llanrumney", "RPI_PICO2_W", ["research", "education"],
    )  # fmt: skip


def test_a_roster_that_is_not_utf8_or_not_there(tmp_path):
    roster = write(tmp_path, HEADER + "Zoë,,easton,outdoor,air,ESP32_GENERIC,,\n", encoding="latin-1")
    result = prepare(roster, tmp_path / "plan")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ {roster} is not UTF-8 text: save it from the spreadsheet as 'CSV UTF-8'.\n"

    result = prepare(tmp_path / "nothing.csv", tmp_path / "plan")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ There is no roster at {tmp_path / 'nothing.csv'}: start from workshops/roster-template.csv.\n"
    )


def test_preparing_again_keeps_every_device_already_started(tmp_path):
    out = tmp_path / "plan"
    prepare(write(tmp_path, ROSTER), out)
    plan = Plan.load(out)
    sam, jo, ali = plan.devices
    sam.advance("flashed")
    sam.record_registration("http://hub.example:8000/", REGISTRATION)
    ali.advance("deployed")
    plan.save(out)
    # Sam moved to row 3 and changed board (too late: kept as registered), Jo's board changed (still planned:
    # taken), Ali left the roster (already deployed: kept), Kim joined.
    changed = write(tmp_path, HEADER + (
        "Jo,,easton,indoor,damp,RPI_PICO2_W,private,home_advice\n"
        "Sam,07700 900123,easton,outdoor,air,RPI_PICO_W,open,research\n"
        "Kim,,easton,outdoor,air,ESP32_GENERIC,,\n"
    ), name="roster-2.csv")  # fmt: skip

    result = prepare(changed, out)

    assert result.exit_code == 0
    assert result.stderr == (
        "! Ali (air, knowle) is no longer on the roster but is already deployed: kept in the plan.\n"
    )
    assert result.stdout == (
        f"✓ Planned 4 devices from roster-2.csv in {out / 'plan.json'}: 3 air, 1 damp.\n"
        "  Boards to bring: 2 ESP32_GENERIC, 1 ESP32_GENERIC_C3, 1 RPI_PICO2_W.\n"
        "  Kept as they were: row 3 (Sam, flashed).\n"
        "  To ask at the workshop: sharing for row 4 (Kim); purposes for row 4 (Kim).\n"
    )
    again = Plan.load(out)
    assert [(d.row, d.name, d.board, d.state, d.device_id) for d in again.devices] == [
        (2, "Jo", "RPI_PICO2_W", "planned", None),
        (3, "Sam", "ESP32_GENERIC", "flashed", "air-sam12345"),
        (4, "Kim", "ESP32_GENERIC", "planned", None),
        (5, "Ali", "ESP32_GENERIC_C3", "deployed", None),
    ]
    assert (again.devices[1].hub, again.devices[1].owner_token) == ("http://hub.example:8000", "own_token")
    assert [entry["state"] for entry in again.devices[1].history] == ["flashed", "registered"]
    with pytest.raises(PlanError) as refused:
        again.devices[1].record_registration("http://hub.example:8000", REGISTRATION)
    assert str(refused.value) == "row 3 (Sam) is already registered as air-sam12345: never twice"


def test_a_device_moves_forward_only(tmp_path):
    out = tmp_path / "plan"
    prepare(write(tmp_path, ROSTER), out)
    sam = Plan.load(out).devices[0]

    sam.advance("deployed")  # a board that already ran MicroPython skips flashing
    with pytest.raises(PlanError) as backwards:
        sam.advance("flashed")
    with pytest.raises(PlanError) as unregistered:
        sam.advance("provisioned")
    sam.record_registration("http://hub", REGISTRATION)
    sam.advance("provisioned")

    assert str(backwards.value) == "row 2 (Sam) is already deployed: it cannot become flashed"
    assert str(unregistered.value) == "row 2 (Sam) cannot be provisioned before it is registered"
    assert [entry["state"] for entry in sam.history] == ["deployed", "registered", "provisioned"]


def test_the_boards_are_those_the_firmware_has_pin_maps_for():
    assert sorted(BOARDS) == sorted(path.stem for path in (REPO / "firmware" / "boards").glob("*.json"))


def test_the_template_plans(tmp_path):
    result = prepare(REPO / "workshops" / "roster-template.csv", tmp_path / "plan")
    assert (result.exit_code, result.stderr) == (0, "")
    assert [(d.board, d.kind, d.placement) for d in Plan.load(tmp_path / "plan").devices] == [
        ("ESP32_GENERIC", "air", "outdoor"),
        ("RPI_PICO_W", "damp", "indoor"),
    ]
