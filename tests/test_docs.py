"""The docs are part of the product: a setting or quantity that is not documented fails the build."""

from pathlib import Path

from firmware.quantities import QUANTITIES
from hub.settings import Settings

DOCS = Path(__file__).parent.parent / "docs"


def env_names(name: str, field) -> list[str]:
    alias = field.validation_alias
    if alias is not None:
        return list(alias.choices)
    return [f"SENSING_{name.upper()}"]


def test_every_setting_is_documented():
    text = (DOCS / "operators.md").read_text()
    missing = [
        env
        for name, field in Settings.model_fields.items()
        for env in env_names(name, field)[:1]
        if f"`{env}`" not in text
    ]
    assert missing == []


def test_every_quantity_is_documented_with_its_unit():
    text = (DOCS / "payload-format.md").read_text()
    missing = [
        name
        for name, q in QUANTITIES.items()
        if f"| `{name}` | {q['unit']} | {q['min']:g} to {q['max']:g} |" not in text
    ]
    assert missing == []
