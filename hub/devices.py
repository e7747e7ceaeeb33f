"""Devices: registration with consent, the views of them that each audience may see, erasure."""

from dataclasses import dataclass

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from hub import consent
from hub.models import (
    Agreement,
    AgreementCreate,
    AgreementPublic,
    ConsentText,
    Device,
    DeviceCreate,
    DevicePrivate,
    DevicePublic,
    Reading,
    Rejection,
)
from hub.security import mosquitto_hash, new_public_id, new_token, token_hash


class DeviceNotFound(LookupError):
    def __init__(self, public_id: str) -> None:
        super().__init__(f"there is no device '{public_id}'")


@dataclass
class Registration:
    device: Device
    agreement: Agreement
    device_secret: str
    owner_token: str


def register(
    session: Session, data: DeviceCreate, agreement: AgreementCreate, registered_by: str, simulated: bool = False
) -> Registration:
    """Register a device together with the consent agreement its owner gave. Secrets are returned once."""
    secret, owner_token = new_token("dev"), new_token("own")
    device = Device(
        **data.model_dump(),
        public_id=new_public_id(data.kind.value),
        secret_hash=token_hash(secret),
        mosquitto_hash=mosquitto_hash(secret),
        owner_token_hash=token_hash(owner_token),
        registered_by=registered_by,
        simulated=simulated,
    )
    session.add(device)
    session.flush()
    given = consent.give_agreement(session, device, agreement)
    session.commit()
    session.refresh(device)
    session.refresh(given)
    return Registration(device, given, secret, owner_token)


def get(session: Session, public_id: str) -> Device:
    device = session.exec(select(Device).where(Device.public_id == public_id)).first()
    if device is None:
        raise DeviceNotFound(public_id)
    return device


def by_secret(session: Session, secret: str) -> Device | None:
    return session.exec(select(Device).where(Device.secret_hash == token_hash(secret))).first()


def public_view(session: Session, device: Device) -> DevicePublic:
    agreement = consent.agreement_in_force(session, device.id)  # type: ignore[arg-type]
    return DevicePublic(
        **device.model_dump(include=set(DevicePublic.model_fields)),
        sharing=agreement.sharing if agreement else None,
        consent_active=agreement is not None,
    )


def private_view(session: Session, device: Device) -> DevicePrivate:
    public = public_view(session, device)
    return DevicePrivate(
        **public.model_dump(),
        latitude=device.latitude,
        longitude=device.longitude,
        registered_by=device.registered_by,
    )


def list_public(
    session: Session, area: str | None = None, kind: str | None = None, limit: int = 100, offset: int = 0
) -> list[DevicePublic]:
    query = select(Device).order_by(col(Device.id))
    if area:
        query = query.where(Device.area == area)
    if kind:
        query = query.where(Device.kind == kind)
    return [public_view(session, d) for d in session.exec(query.offset(offset).limit(limit))]


def agreement_view(session: Session, agreement: Agreement) -> AgreementPublic:
    text = session.get(ConsentText, agreement.consent_text_id)
    assert text is not None
    return AgreementPublic(**agreement.model_dump(), consent_version=text.version, consent_sha256=text.sha256)


def agreements(session: Session, device: Device) -> list[AgreementPublic]:
    rows = session.exec(select(Agreement).where(Agreement.device_id == device.id).order_by(col(Agreement.id)))
    return [agreement_view(session, a) for a in rows]


def erase_readings(session: Session, device: Device) -> int:
    """Delete every reading of the device (and the rejected input it sent). Returns how many readings."""
    count = session.exec(select(func.count()).select_from(Reading).where(Reading.device_id == device.id)).one()
    session.exec(delete(Reading).where(col(Reading.device_id) == device.id))  # type: ignore[call-overload]
    session.exec(delete(Rejection).where(col(Rejection.device_id) == device.id))  # type: ignore[call-overload]
    session.commit()
    return int(count)
