"""Devices: registration with consent, the views of them that each audience may see, erasure."""

import json
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
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
    DeviceStatus,
    DeviceStatusPublic,
    Reading,
    Rejection,
)
from hub.security import mosquitto_hash, new_public_id, new_token, token_hash


class DeviceNotFound(LookupError):
    def __init__(self, public_id: str) -> None:
        super().__init__(f"there is no device '{public_id}'")


class RegistrationConflict(ValueError):
    """An Idempotency-Key used before, for a registration that cannot be repeated as asked; one sentence."""


@dataclass
class Registration:
    device: Device
    agreement: Agreement
    device_secret: str
    owner_token: str
    repeated: bool = False  # a repeat of an earlier registration: the secrets are new, the earlier ones void


def register(
    session: Session,
    data: DeviceCreate,
    agreement: AgreementCreate,
    registered_by: str,
    simulated: bool = False,
    idempotency_key: str | None = None,
) -> Registration:
    """Register a device together with the consent agreement its owner gave. Secrets are returned once.

    With an `idempotency_key` the same key holder used before for the same request, nothing new is registered:
    the earlier device is given a new secret and owner token instead (see `repeat`).
    """
    key_hash = body_sha256 = None
    if idempotency_key is not None:
        key_hash = token_hash(idempotency_key)
        body_sha256 = request_sha256(data, agreement, simulated)
        earlier = registered_with(session, registered_by, key_hash)
        if earlier is not None:
            return repeat(session, earlier, body_sha256)
    secret, owner_token = new_token("dev"), new_token("own")
    device = Device(
        **data.model_dump(),
        public_id=new_public_id(data.kind.value),
        secret_hash=token_hash(secret),
        mosquitto_hash=mosquitto_hash(secret),
        owner_token_hash=token_hash(owner_token),
        registered_by=registered_by,
        simulated=simulated,
        registration_key_hash=key_hash,
        registration_body_sha256=body_sha256,
    )
    session.add(device)
    try:
        session.flush()
    except IntegrityError:
        # The same key sent twice at once: the other request registered the device first.
        session.rollback()
        earlier = registered_with(session, registered_by, key_hash) if key_hash else None
        if earlier is None:
            raise
        return repeat(session, earlier, body_sha256)  # type: ignore[arg-type]
    given = consent.give_agreement(session, device, agreement)
    session.commit()
    session.refresh(device)
    session.refresh(given)
    return Registration(device, given, secret, owner_token)


def request_sha256(data: DeviceCreate, agreement: AgreementCreate, simulated: bool) -> str:
    """What a registration asked for, as one digest: a repeat must ask for exactly the same."""
    asked = {"device": data.model_dump(mode="json"), "agreement": agreement.model_dump(mode="json"),
             "simulated": simulated}  # fmt: skip
    return token_hash(json.dumps(asked, sort_keys=True, separators=(",", ":")))


def registered_with(session: Session, registered_by: str, key_hash: str) -> Device | None:
    query = select(Device).where(Device.registered_by == registered_by, Device.registration_key_hash == key_hash)
    return session.exec(query).first()


def repeat(session: Session, device: Device, body_sha256: str) -> Registration:
    """The earlier registration again, with a new device secret and owner token replacing the first ones.

    The hub keeps only hashes of the first ones, so it cannot show them again. A repeat means their answer never
    reached the caller, so nobody holds them: replacing them is safe as long as the device has never been heard
    from. A device that has sent anything keeps its secret, and the repeat is refused.
    """
    if device.registration_body_sha256 != body_sha256:
        raise RegistrationConflict(
            f"this Idempotency-Key was first sent to register {device.public_id} with other details: send the "
            "same details as then to repeat that registration, or a new key to register another device"
        )
    if heard_from(session, device):
        raise RegistrationConflict(
            f"{device.public_id}, registered with this Idempotency-Key, has sent to the hub since, so its secret "
            "is not replaced: use the device secret and owner token its registration gave"
        )
    secret, owner_token = new_token("dev"), new_token("own")
    device.secret_hash = token_hash(secret)
    device.mosquitto_hash = mosquitto_hash(secret)
    device.owner_token_hash = token_hash(owner_token)
    session.add(device)
    session.commit()
    session.refresh(device)
    first = session.exec(select(Agreement).where(Agreement.device_id == device.id).order_by(col(Agreement.id))).first()
    assert first is not None
    return Registration(device, first, secret, owner_token, repeated=True)


def heard_from(session: Session, device: Device) -> bool:
    """Whether the device has sent anything (a reading, a status, or input refused): its secret is in use."""
    for column in (Reading.id, DeviceStatus.device_id, Rejection.id):
        if session.exec(select(column).where(column.table.c.device_id == device.id).limit(1)).first() is not None:
            return True
    return False


def get(session: Session, public_id: str) -> Device:
    device = session.exec(select(Device).where(Device.public_id == public_id)).first()
    if device is None:
        raise DeviceNotFound(public_id)
    return device


def by_secret(session: Session, secret: str) -> Device | None:
    return session.exec(select(Device).where(Device.secret_hash == token_hash(secret))).first()


def public_view(session: Session, device: Device) -> DevicePublic:
    return _public(device, consent.agreement_in_force(session, device.id))  # type: ignore[arg-type]


def _public(device: Device, agreement: Agreement | None) -> DevicePublic:
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
        status=status_view(session, device),
    )


def status_view(session: Session, device: Device) -> DeviceStatusPublic | None:
    """The device's last status, as it said it; None when none has arrived."""
    held = session.get(DeviceStatus, device.id)
    if held is None:
        return None
    return DeviceStatusPublic(**json.loads(held.status), received_at=held.received_at, transport=held.transport)


def list_public(
    session: Session, area: str | None = None, kind: str | None = None, limit: int = 100, offset: int = 0
) -> list[DevicePublic]:
    query = select(Device).order_by(col(Device.id))
    if area:
        query = query.where(Device.area == area)
    if kind:
        query = query.where(Device.kind == kind)
    listed = list(session.exec(query.offset(offset).limit(limit)))
    in_force = consent.agreements_in_force(session, [d.id for d in listed])  # type: ignore[misc]
    return [_public(d, in_force.get(d.id)) for d in listed]  # type: ignore[arg-type]


def agreement_view(session: Session, agreement: Agreement) -> AgreementPublic:
    text = session.get(ConsentText, agreement.consent_text_id)
    assert text is not None
    return AgreementPublic(**agreement.model_dump(), consent_version=text.version, consent_sha256=text.sha256)


def agreements(session: Session, device: Device) -> list[AgreementPublic]:
    rows = session.exec(select(Agreement).where(Agreement.device_id == device.id).order_by(col(Agreement.id)))
    return [agreement_view(session, a) for a in rows]


def erase_readings(session: Session, device: Device) -> int:
    """Delete every reading of the device (and its status, and the rejected input it sent). Returns how many
    readings."""
    count = session.exec(select(func.count()).select_from(Reading).where(Reading.device_id == device.id)).one()
    for table in (Reading, DeviceStatus, Rejection):
        session.exec(delete(table).where(col(table.device_id) == device.id))  # type: ignore[call-overload]
    session.commit()
    return int(count)
