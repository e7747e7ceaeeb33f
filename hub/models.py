"""The hub's data model: devices, consent texts, agreements, readings and rejected input.

Families per noun, as SQLModel does them: `XBase` (shared fields), `X(table=True)`, `XCreate`, `XPublic`.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from hub.timeutil import UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def stored_as_text(enum: type[StrEnum]) -> SAEnum:
    """Keep an enum as its plain value in a VARCHAR (no database enum type to migrate)."""
    return SAEnum(enum, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Kind(StrEnum):
    air = "air"
    damp = "damp"


class Transport(StrEnum):
    mqtt = "mqtt"
    lorawan = "lorawan"
    http = "http"


class Placement(StrEnum):
    indoor = "indoor"
    outdoor = "outdoor"


class Sharing(StrEnum):
    private = "private"  # only the resident (and the operator, to run the hub)
    community = "community"  # area aggregates for the community group
    open = "open"  # open data


class LocationRelease(StrEnum):
    none = "none"  # no location at all
    area = "area"  # the named area only
    h3 = "h3"  # an H3 cell at the agreed resolution


class TimeRelease(StrEnum):
    exact = "exact"
    hour = "hour"  # measured_at rounded down to the hour in published data


class AgreementStatus(StrEnum):
    active = "active"
    withdrawn = "withdrawn"


class Role(StrEnum):
    operator = "operator"
    facilitator = "facilitator"


# --- API keys -------------------------------------------------------------------------------------------


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    role: Role = Field(sa_type=stored_as_text(Role))
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- Devices --------------------------------------------------------------------------------------------


class DeviceBase(SQLModel):
    kind: Kind = Field(sa_type=stored_as_text(Kind))
    board: str = Field(max_length=40, description="e.g. ESP32_GENERIC, RPI_PICO_W")
    transport: Transport = Field(sa_type=stored_as_text(Transport))
    placement: Placement = Field(sa_type=stored_as_text(Placement))
    area: str = Field(max_length=80, description="the named area the device is in, e.g. a ward or neighbourhood")
    label: str = Field(default="", max_length=120, description="a name the resident chose")


class Device(DeviceBase, table=True):
    __table_args__ = (
        # An Idempotency-Key names one registration per key holder: a repeat of it finds this device again.
        UniqueConstraint("registered_by", "registration_key_hash", name="uq_device_registration_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, index=True)
    latitude: float | None = Field(default=None, description="exact location: private")
    longitude: float | None = Field(default=None, description="exact location: private")
    secret_hash: str = Field(max_length=64, unique=True)
    # The same secret hashed as Mosquitto's password_file wants it (`sensing hub broker-files`); empty for a
    # device registered before the hub made one.
    mosquitto_hash: str | None = Field(default=None, max_length=200)
    owner_token_hash: str = Field(max_length=64, unique=True)
    registered_by: str = Field(max_length=100)
    simulated: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The SHA-256 of the Idempotency-Key the registration came with, and of the request it came with; empty for a
    # device registered without one (or before the hub kept them).
    registration_key_hash: str | None = Field(default=None, max_length=64)
    registration_body_sha256: str | None = Field(default=None, max_length=64)


class DeviceCreate(DeviceBase):
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class DevicePublic(DeviceBase):
    """What anyone may see of a device: never its secret or its exact location."""

    public_id: str
    created_at: datetime
    sharing: Sharing | None = None
    consent_active: bool = False
    simulated: bool = False


class DeviceStatus(SQLModel, table=True):
    """Each device's last status, as it said it: the retained MQTT status topic, or its LoRaWAN status uplink.
    Personal to the device's owner (and the operator): never in open data."""

    __tablename__ = "device_status"
    device_id: int = Field(foreign_key="device.id", primary_key=True, sa_column_kwargs={"autoincrement": False})
    # The status as codec.decode_status_json gives it, as JSON with its keys sorted, so a repeat compares equal.
    status: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_type=UTCDateTime, description="when it arrived (LoRaWAN: the network's time)")
    transport: Transport = Field(sa_type=stored_as_text(Transport))


class FaultPublic(SQLModel):
    sensor: str = Field(description="e.g. sht4x@0x44; from a LoRaWAN status, ds18b20@…55 (the end of its ROM)")
    fault: str = Field(description="absent, crc, stuck, not_ready, invalid, unknown or error (docs/sensors.md)")
    message: str = Field(default="", description="one sentence (not sent over LoRaWAN)")


class DeviceStatusPublic(SQLModel):
    """A device's last status, for its owner and the operator. Fields the device did not send are null."""

    state: str = Field(description="online, offline (a clean stop, or the broker's last will), asleep, config_invalid")
    message: str = Field(default="", description="e.g. why the device refused a settings change")
    faults: list[FaultPublic] = Field(default_factory=list, description="the sensors that failed in its last reading")
    dropped: int | None = Field(default=None, description="readings lost because its buffer was full")
    untimed: int | None = Field(default=None, description="readings not sent because their time was never known")
    buffered: int | None = Field(default=None, description="readings waiting on the device (LoRaWAN)")
    boot: int | None = Field(default=None, description="the device's start number, modulo 65536 (LoRaWAN)")
    battery_voltage: float | None = Field(default=None, description="V, when the device measures it (LoRaWAN)")
    received_at: datetime
    transport: Transport


class DevicePrivate(DevicePublic):
    """What the device's owner and the operator see."""

    latitude: float | None
    longitude: float | None
    registered_by: str
    status: DeviceStatusPublic | None = Field(default=None, description="its last status; null: none arrived yet")


# --- Consent --------------------------------------------------------------------------------------------


class ConsentText(SQLModel, table=True):
    __tablename__ = "consent_text"
    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=40, unique=True)
    wording: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsentTextPublic(SQLModel):
    version: str
    wording: str
    sha256: str
    created_at: datetime


class AgreementBase(SQLModel):
    sharing: Sharing = Field(sa_type=stored_as_text(Sharing))
    purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    location_release: LocationRelease = Field(default=LocationRelease.area, sa_type=stored_as_text(LocationRelease))
    location_h3_resolution: int | None = Field(default=None, ge=0, le=9)
    time_release: TimeRelease = Field(default=TimeRelease.exact, sa_type=stored_as_text(TimeRelease))
    retention_days: int | None = Field(default=None, ge=1, description="empty: kept until withdrawn")
    collection_method: str = Field(max_length=40, description="workshop, online form, paper form, ...")
    collected_by: str = Field(max_length=100, description="who took the consent: facilitator or group")


class Agreement(AgreementBase, table=True):
    """One consent agreement for one device. Immutable once given: only withdrawal changes it."""

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    consent_text_id: int = Field(foreign_key="consent_text.id")
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: AgreementStatus = Field(default=AgreementStatus.active, sa_type=stored_as_text(AgreementStatus))
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgreementCreate(AgreementBase):
    consent_version: str = Field(description="the version of the consent text the resident saw")


class AgreementPublic(AgreementBase):
    id: int
    consent_version: str
    consent_sha256: str
    granted_at: datetime
    status: AgreementStatus
    withdrawn_at: datetime | None


# --- Readings -------------------------------------------------------------------------------------------


class Reading(SQLModel, table=True):
    __table_args__ = (
        # A retransmitted record (same device, same seq) is a no-op, never a duplicate row.
        UniqueConstraint("device_id", "seq", "quantity", name="uq_reading_device_seq_quantity"),
        Index("ix_reading_device_measured", "device_id", "measured_at"),
        Index("ix_reading_agreement", "agreement_id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    device_id: int = Field(foreign_key="device.id")
    quantity: str = Field(max_length=32)
    value: float
    measured_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    seq: int = Field(sa_type=BigInteger)
    agreement_id: int = Field(foreign_key="agreement.id")
    transport: Transport = Field(sa_type=stored_as_text(Transport))


class ReadingPublic(SQLModel):
    id: int
    quantity: str
    unit: str
    value: float
    measured_at: datetime
    received_at: datetime
    seq: int
    agreement_id: int
    transport: Transport


# --- Rejected input -------------------------------------------------------------------------------------


class Rejection(SQLModel, table=True):
    """Input that was refused, and why: visible to the device's owner and the operator."""

    __table_args__ = (Index("ix_rejection_device_received", "device_id", "received_at"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    transport: Transport = Field(sa_type=stored_as_text(Transport))
    device_id: int | None = Field(default=None, foreign_key="device.id")
    claimed_device: str | None = Field(default=None, max_length=100)
    seq: int | None = Field(default=None, sa_type=BigInteger)
    quantity: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=300)
    excerpt: str = Field(default="", max_length=300)


class RejectionPublic(SQLModel):
    id: int
    received_at: datetime
    transport: Transport
    claimed_device: str | None
    seq: int | None
    quantity: str | None
    reason: str
    excerpt: str
