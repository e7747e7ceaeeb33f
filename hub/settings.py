"""Hub settings, read from the environment (and an optional `.env` file)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class UnsafeSettings(ValueError):
    """The settings are not safe to run outside development."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENSING_", env_file=".env", extra="ignore")

    _generated_key: str | None = PrivateAttr(default=None)  # the development key, once read or made

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SENSING_DATABASE_URL")
    )
    # Empty: the hub starts its own embedded broker. Otherwise mqtt://[user:pass@]host:port of a real broker.
    broker_url: str | None = None
    # With an mqtts:// broker URL: the CA certificate (PEM) the broker's certificate must be signed by. Empty: the
    # system's CAs (right for a certificate from a public CA such as Let's Encrypt).
    broker_ca_file: Path | None = None
    # Rewrite Mosquitto's password and ACL files here after each registration (see `sensing hub broker-files`).
    broker_files_dir: Path | None = None
    embedded_broker_host: str = "127.0.0.1"
    embedded_broker_port: int = 1883
    # The operator key bootstraps everything else (facilitator keys, devices). In development an empty key is
    # replaced by one generated into the data directory; elsewhere it must be set and strong.
    operator_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    hub_name: str = "Community sensing hub"
    open_data_licence: str = "ODbL-1.0"
    open_data_licence_url: str = "https://opendatacommons.org/licenses/odbl/1-0/"
    open_data_attribution: str = "Residents and community groups contributing to this hub"
    mqtt_client_id: str = "sensing-hub-ingest"
    # With a broker of your own, every ingest subscriber (the hub's and `sensing hub ingest` workers) joins this
    # shared-subscription group, so they split the messages instead of each storing them all. Empty: a plain
    # subscription (see docs/operators.md for the trade-off).
    ingest_share_group: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$")
    ingest_workers: int = Field(default=1, ge=1, le=32)
    ingest_batch_size: int = 500
    ingest_batch_seconds: float = 0.05
    max_message_bytes: int = 64 * 1024
    max_future_seconds: int = 300
    # LoRaWAN network servers post uplinks to the hub with one of these as the bearer token (docs/lorawan.md).
    # Empty: that endpoint is off.
    lorawan_ttn_secret: str = ""
    lorawan_chirpstack_secret: str = ""
    lorawan_compact_port: int = Field(default=10, ge=1, le=223)
    lorawan_status_port: int = Field(default=12, ge=1, le=223)
    # CayenneLPP channel -> quantity, per hub device id; "*" is the map for devices not named.
    lorawan_cayenne_channels: dict[str, dict[int, str]] = Field(
        default_factory=lambda: {"*": {1: "temperature", 2: "humidity", 3: "pressure"}}
    )

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> "Settings":
        if self.environment != "development":
            key = self.operator_key.strip()
            if not key or key in {"changeme", "change-me", "secret", "operator"}:
                raise UnsafeSettings(
                    "SENSING_OPERATOR_KEY must be set to a strong secret outside development "
                    "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
            if len(key) < 24:
                raise UnsafeSettings("SENSING_OPERATOR_KEY is too short: use at least 24 characters")
        return self

    @model_validator(mode="after")
    def _lorawan(self) -> "Settings":
        from firmware.quantities import QUANTITIES

        if self.lorawan_status_port == self.lorawan_compact_port:
            raise ValueError("SENSING_LORAWAN_STATUS_PORT must differ from SENSING_LORAWAN_COMPACT_PORT")
        for name in ("lorawan_ttn_secret", "lorawan_chirpstack_secret"):
            secret = getattr(self, name)
            if secret and len(secret.strip()) < 24:
                raise UnsafeSettings(f"SENSING_{name.upper()} is too short: use at least 24 characters")
        for device, channels in self.lorawan_cayenne_channels.items():
            for channel, quantity in channels.items():
                if quantity not in QUANTITIES:
                    raise ValueError(f"SENSING_LORAWAN_CAYENNE_CHANNELS: channel {channel} of '{device}' names "
                                     f"unknown quantity '{quantity}'")
        return self

    @field_validator("broker_ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # SENSING_BROKER_CA_FILE= in a .env file: not set

    @model_validator(mode="after")
    def _broker_ca(self) -> "Settings":
        if self.broker_ca_file is None:
            return self
        if not (self.broker_url or "").startswith("mqtts://"):
            raise ValueError("SENSING_BROKER_CA_FILE is set but SENSING_BROKER_URL is not an mqtts:// URL, "
                             "so the connection would not use TLS")
        if not self.broker_ca_file.is_file():
            raise ValueError(f"SENSING_BROKER_CA_FILE {self.broker_ca_file} is not a file")
        return self

    @model_validator(mode="after")
    def _workers_share(self) -> "Settings":
        if self.ingest_workers > 1 and not self.ingest_share_group:
            raise ValueError(
                "SENSING_INGEST_WORKERS above 1 needs SENSING_INGEST_SHARE_GROUP (e.g. sensing-hub), "
                "or every worker would store every message"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the common postgres:// forms and use the psycopg 3 driver.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    def resolved_operator_key(self) -> str:
        """The operator key; in development, generate one into the data directory on first use. Read from disk
        once: every authenticated request asks for it."""
        if self.operator_key:
            return self.operator_key
        if self._generated_key is None:
            self._generated_key = self._development_key()
        return self._generated_key

    def _development_key(self) -> str:
        import secrets

        path = self.data_dir / "operator-key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
