"""docs/sensors.md says what the code does: every chip and board is in it, its example runs as shown."""

import json
import os
import re
import subprocess

from firmware.sensors import damp, registry
from tests.firmware.support import REPO

DOC = REPO / "docs" / "sensors.md"
TEXT = DOC.read_text()


def test_every_chip_is_in_the_table_with_its_addresses():
    for chip, (_, _, bus, addresses) in registry.CHIPS.items():
        row = next((line for line in TEXT.splitlines() if line.startswith(f"| `{chip}` ")), None)
        assert row is not None, f"{chip} is not in the chip table"
        assert {"i2c": "| I2C |", "uart": "| UART 9600 8N1 |", "onewire": "| 1-Wire |"}[bus] in row, chip
        for address in addresses:
            assert f"0x{address:02x}" in row.lower(), (chip, hex(address))


def test_wiring_table_matches_the_board_maps():
    for path in sorted((REPO / "firmware" / "boards").glob("*.json")):
        board = json.loads(path.read_text())
        row = next(line for line in TEXT.splitlines() if line.startswith(f"| `{board['board']}` "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        prefix = "GP" if board["port"] == "rp2" else "GPIO"
        i2c, uart = board["i2c"], board["uart"]
        assert cells[1] == f"{i2c['id']}: {prefix}{i2c['sda']}, {prefix}{i2c['scl']}"
        for cell, spec in ((cells[2], uart["sensor"]), (cells[3], uart["modem"])):
            expected = "none" if spec is None else f"{spec['id']}: {prefix}{spec['tx']}, {prefix}{spec['rx']}"
            assert cell == expected, (board["board"], cell)
        assert cells[4] == f"{prefix}{board['onewire']['pin']}"
        led = board["led"]["pin"]
        assert cells[5].startswith(f"`{json.dumps(led)}`" if isinstance(led, str) else f"{prefix}{led}")


def test_damp_constants_and_thresholds_are_the_ones_documented():
    assert f"β = {damp.BETA}" in TEXT and f"λ = {damp.LAMBDA} °C" in TEXT
    low, medium, high = damp.RISK_THRESHOLDS
    assert f"| 0 none | below {low:g} % |" in TEXT
    assert f"| 3 high | {high:g} % and above |" in TEXT
    assert f"| 2 medium | {medium:g} % to below {high:g} % |" in TEXT


def test_the_example_runs_as_shown(micropython, tmp_path):
    code = re.search(r"```python\n(from firmware.sensors import registry\nfrom cli.*?)```", TEXT, re.S).group(1)
    shown = re.search(r"```sh\nMICROPYPATH=\. \.venv/bin/micropython example\.py\n```\n\n```\n(.*?)```",
                      TEXT, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([micropython, str(script)], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env=dict(os.environ, MICROPYPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert out.stdout == shown
