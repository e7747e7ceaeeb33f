"""Devices and their consent: register, view, give a new agreement, withdraw, erase, read."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from hub import consent, devices, readings
from hub.api.deps import ManagedDeviceDep, OwnedDeviceDep, SessionDep, SettingsDep, StaffDep, device_for
from hub.broker_files import rewrite_after_registration
from hub.models import (
    AgreementCreate,
    AgreementPublic,
    DeviceCreate,
    DevicePrivate,
    DevicePublic,
    Kind,
    ReadingPublic,
    Rejection,
    RejectionPublic,
)

router = APIRouter(prefix="/devices", tags=["devices"])


class DeviceRegistration(BaseModel):
    device: DeviceCreate
    agreement: AgreementCreate
    simulated: bool = Field(default=False, description="a simulated device (`sensing simulate`): never in open data")


class DeviceRegistered(BaseModel):
    device: DevicePrivate
    agreement: AgreementPublic
    device_secret: str = Field(description="the device's MQTT password and HTTP bearer token: shown only now")
    owner_token: str = Field(description="the resident's key to their own page and data: shown only now")
    repeated: bool = Field(
        default=False,
        description=(
            "true: a repeat of an earlier registration with the same Idempotency-Key (status 200), answered with the "
            "same device and a NEW device secret and owner token: the ones the first answer gave no longer work"
        ),
    )


class Withdrawal(BaseModel):
    withdrawn: int = Field(description="how many agreements were withdrawn")
    withdrawn_at: datetime | None


class Erasure(BaseModel):
    erased: int = Field(description="how many readings were deleted")


class ReadingPage(BaseModel):
    readings: list[ReadingPublic]
    next: str | None = Field(description="URL of the next page, or null on the last page")


def consent_error(exc: consent.ConsentError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceRegistered,
    responses={
        200: {"description": "a repeat (same Idempotency-Key, same body): the same device, new secrets"},
        409: {"description": "the Idempotency-Key was used for another body, or the device is in use"},
    },
)
def register_device(
    body: DeviceRegistration,
    who: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=8,
            max_length=200,
            description="a new random value (a UUID) per device to register, kept before sending: a repeat with the "
            "same key and body, after an answer that never arrived, registers nothing new",
        ),
    ] = None,
) -> DeviceRegistered:
    """Register a device with the consent agreement its owner gave. Needs an operator or facilitator key."""
    try:
        reg = devices.register(session, body.device, body.agreement, registered_by=who.name, simulated=body.simulated,
                               idempotency_key=idempotency_key)  # fmt: skip
    except consent.ConsentError as exc:
        session.rollback()
        raise consent_error(exc) from exc
    except devices.RegistrationConflict as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    rewrite_after_registration(settings, session.get_bind())  # type: ignore[arg-type]
    if reg.repeated:
        response.status_code = status.HTTP_200_OK
    return DeviceRegistered(
        device=devices.private_view(session, reg.device),
        agreement=devices.agreement_view(session, reg.agreement),
        device_secret=reg.device_secret,
        owner_token=reg.owner_token,
        repeated=reg.repeated,
    )


@router.get("", response_model=list[DevicePublic])
def list_devices(
    session: SessionDep,
    area: str | None = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DevicePublic]:
    """Every device, as the public may see it: no secrets, no exact location."""
    return devices.list_public(session, area, kind.value if kind else None, limit, offset)


@router.get("/{public_id}", response_model=DevicePublic)
def get_device(public_id: str, session: SessionDep) -> DevicePublic:
    return devices.public_view(session, device_for(public_id, session))


@router.get("/{public_id}/private", response_model=DevicePrivate)
def get_device_private(device: OwnedDeviceDep, session: SessionDep) -> DevicePrivate:
    """The device with its exact location: for its owner and the operator."""
    return devices.private_view(session, device)


@router.get("/{public_id}/agreements", response_model=list[AgreementPublic])
def list_agreements(device: ManagedDeviceDep, session: SessionDep) -> list[AgreementPublic]:
    return devices.agreements(session, device)


@router.post("/{public_id}/agreements", status_code=status.HTTP_201_CREATED, response_model=AgreementPublic)
def give_agreement(body: AgreementCreate, device: ManagedDeviceDep, session: SessionDep) -> AgreementPublic:
    """Give a new agreement: it is in force for every reading received from now on."""
    try:
        agreement = consent.give_agreement(session, device, body)
    except consent.ConsentError as exc:
        session.rollback()
        raise consent_error(exc) from exc
    session.commit()
    session.refresh(agreement)
    return devices.agreement_view(session, agreement)


@router.post("/{public_id}/withdraw", response_model=Withdrawal)
def withdraw_consent(device: ManagedDeviceDep, session: SessionDep) -> Withdrawal:
    """Withdraw consent: the device's readings leave every output at once, and new ones are refused."""
    count = consent.withdraw(session, device.id)  # type: ignore[arg-type]
    session.commit()
    latest = devices.agreements(session, device)
    return Withdrawal(withdrawn=count, withdrawn_at=latest[-1].withdrawn_at if latest else None)


@router.delete("/{public_id}/readings", response_model=Erasure)
def erase_readings(device: OwnedDeviceDep, session: SessionDep) -> Erasure:
    """Erase every reading the device has sent, its last status, and the input the hub refused from it."""
    return Erasure(erased=devices.erase_readings(session, device))


@router.get("/{public_id}/readings", response_model=ReadingPage)
def device_readings(
    request: Request,
    response: Response,
    device: OwnedDeviceDep,
    session: SessionDep,
    quantity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int | None, Query(description="continue after this reading id (from `next`)")] = None,
    before: Annotated[int | None, Query(description="continue before this reading id (from `next`, newest first)")]
    = None,
    order: Annotated[Literal["oldest", "newest"], Query(description="oldest (or newest) received first")] = "oldest",
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> ReadingPage:
    """The device's readings in the order they were received, oldest first (or newest), for its owner or the
    operator."""
    newest = order == "newest"
    rows = readings.for_device(session, device.id, quantity, since, until, after, limit,  # type: ignore[arg-type]
                               newest_first=newest, before=before)  # fmt: skip
    next_url = None
    if len(rows) == limit:
        keyset = {"before": rows[-1].id} if newest else {"after": rows[-1].id}
        next_url = str(request.url.include_query_params(**keyset))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return ReadingPage(readings=[readings.public(r) for r in rows], next=next_url)


@router.get("/{public_id}/rejections", response_model=list[RejectionPublic])
def device_rejections(
    device: OwnedDeviceDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[Rejection]:
    """Input from this device that the hub refused, newest first, with the reason."""
    query = select(Rejection).where(Rejection.device_id == device.id).order_by(col(Rejection.id).desc()).limit(limit)
    return list(session.exec(query))
