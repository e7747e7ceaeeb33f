"""docs/firmware.md documents every config key the firmware reads, each with the default the code uses."""

import json
import re

from firmware import app
from firmware.config import DEFAULTS, REQUIRED
from tests.firmware.support import REPO

DOC = REPO / "docs" / "firmware.md"


def optional_keys() -> list[str]:
    """Keys prepare.py (main.py's start) reads with config.get and make_config does not know, such as the WiFi
    network."""
    source = (REPO / "firmware" / "prepare.py").read_text()
    return sorted(set(re.findall(r'config\.get\("(\w+)"', source)) - set(DEFAULTS))


def test_every_config_key_is_documented_with_its_default():
    text = DOC.read_text()
    rows = [f"| `{key}` | required |" for key in REQUIRED]
    rows += [f"| `{key}` | `{json.dumps(default)}` |" for key, default in DEFAULTS.items()]
    rows += [f"| `{key}` |" for key in optional_keys()]
    assert [row for row in rows if row not in text] == []


def test_the_wifi_keys_are_found_in_prepare():
    # Without this, a change to how prepare.py reads them would silently leave them out of the check above.
    assert optional_keys() == ["wifi_password", "wifi_ssid"]


def test_the_laptop_example_uses_only_keys_the_firmware_reads():
    example = json.loads(re.search(r"```json\n(\{\n.*?\n\})\n```", DOC.read_text(), re.S).group(1))
    known = set(REQUIRED) | set(DEFAULTS) | set(optional_keys())
    assert sorted(set(example) - known) == []
    assert app.make_config(example)["keepalive"] == 60  # make_config takes it and fills in the rest
