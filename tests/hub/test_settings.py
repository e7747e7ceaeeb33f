"""Settings come from the environment; outside development the hub refuses to run on a default secret."""

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import Settings

SENSING = str(Path(sys.executable).parent / "sensing")


@pytest.mark.parametrize("key", ["", "   ", "changeme", "secret", "operator"])
def test_production_refuses_an_empty_or_default_operator_key(key):
    with pytest.raises(ValidationError, match="SENSING_OPERATOR_KEY must be set to a strong secret"):
        Settings(environment="production", operator_key=key)


def test_production_refuses_a_short_operator_key():
    with pytest.raises(ValidationError, match="SENSING_OPERATOR_KEY is too short: use at least 24 characters"):
        Settings(environment="production", operator_key="x" * 23)


def test_development_generates_a_key_into_the_data_dir_once(tmp_path):
    settings = Settings(environment="development", operator_key="", data_dir=tmp_path)
    key = settings.resolved_operator_key()
    assert len(key) >= 40
    assert (tmp_path / "operator-key").read_text() == key + "\n"
    assert (tmp_path / "operator-key").stat().st_mode & 0o777 == 0o600
    assert Settings(environment="development", operator_key="", data_dir=tmp_path).resolved_operator_key() == key


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", "postgres://someone@db:5432/city")
    monkeypatch.setenv("SENSING_BROKER_URL", "mqtt://broker:1883")
    monkeypatch.setenv("SENSING_OPERATOR_KEY", "k" * 30)
    monkeypatch.setenv("SENSING_ENVIRONMENT", "production")
    settings = Settings()
    assert settings.sqlalchemy_url == "postgresql+psycopg://someone@db:5432/city"
    assert settings.broker_url == "mqtt://broker:1883"


def test_the_hub_will_not_start_in_production_without_a_key(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SENSING_ENVIRONMENT": "production", "SENSING_DATA_DIR": str(tmp_path)}
    result = subprocess.run([SENSING, "hub", "serve"], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        "✗ The hub's settings are not usable: SENSING_OPERATOR_KEY must be set to a strong secret outside "
        "development (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))').\n"
    )
