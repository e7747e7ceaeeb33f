"""docs/flashing.md covers every option of `sensing device flash` and `fetch-firmware`, and every board it flashes."""

from pathlib import Path

import typer

from cli.firmware_images import load_manifest
from cli.main import app

DOC = (Path(__file__).parents[2] / "docs" / "flashing.md").read_text()


def options(command: str) -> list[str]:
    device = typer.main.get_command(app).commands["device"]
    return [name for param in device.commands[command].params for name in param.opts + param.secondary_opts
            if name.startswith("--")]  # fmt: skip


def test_every_option_is_documented():
    missing = [name for command in ("flash", "fetch-firmware") for name in options(command) if f"`{name}`" not in DOC]
    assert missing == []
    assert "`--no-stub`" in DOC and "`--all`" in DOC


def test_every_board_of_the_manifest_is_documented():
    manifest = load_manifest()
    assert [board for board in manifest.board_names() if f"`{board}`" not in DOC] == []
