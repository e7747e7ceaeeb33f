"""Shared request dependencies: the database session and who is calling."""

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select

from hub import devices
from hub.models import ApiKey, Device, Role
from hub.security import token_hash
from hub.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
bearer = HTTPBearer(auto_error=False, description="an operator or facilitator key, owner token or device secret")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    role: str  # operator, facilitator, owner
    name: str
    device_id: int | None = None  # for an owner: the device they own


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def identify(credentials: HTTPAuthorizationCredentials | None, session: Session, settings: Settings) -> Caller:
    if credentials is None:
        raise unauthorized("this needs a key: send it as 'Authorization: Bearer <key>'")
    token = credentials.credentials
    if hmac.compare_digest(token.encode(), settings.resolved_operator_key().encode()):
        return Caller(Role.operator.value, "operator")
    hashed = token_hash(token)
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hashed, ApiKey.revoked_at == None)).first()  # noqa: E711
    if key is not None:
        return Caller(key.role.value if isinstance(key.role, Role) else key.role, key.name)
    owner = session.exec(select(Device).where(Device.owner_token_hash == hashed)).first()
    if owner is not None:
        return Caller("owner", f"owner of {owner.public_id}", owner.id)
    raise unauthorized("the key was not recognised: check it was copied whole, or ask the hub operator")


def caller(credentials: BearerDep, session: SessionDep, settings: SettingsDep) -> Caller:
    return identify(credentials, session, settings)


CallerDep = Annotated[Caller, Depends(caller)]


def staff(who: CallerDep) -> Caller:
    if who.role not in (Role.operator.value, Role.facilitator.value):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an operator or facilitator key can do this")
    return who


def operator(who: CallerDep) -> Caller:
    if who.role != Role.operator.value:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the hub operator's key can do this")
    return who


StaffDep = Annotated[Caller, Depends(staff)]
OperatorDep = Annotated[Caller, Depends(operator)]


def device_for(public_id: str, session: Session) -> Device:
    try:
        return devices.get(session, public_id)
    except devices.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def owned_device(public_id: str, who: CallerDep, session: SessionDep) -> Device:
    """The device, if the caller is its owner or the operator."""
    device = device_for(public_id, session)
    if who.role == Role.operator.value or (who.role == "owner" and who.device_id == device.id):
        return device
    raise HTTPException(status.HTTP_403_FORBIDDEN, "only the device's owner or the hub operator can see this")


def managed_device(public_id: str, who: CallerDep, session: SessionDep) -> Device:
    """The device, if the caller is its owner, a facilitator or the operator (consent changes)."""
    device = device_for(public_id, session)
    if who.role in (Role.operator.value, Role.facilitator.value):
        return device
    if who.role == "owner" and who.device_id == device.id:
        return device
    raise HTTPException(status.HTTP_403_FORBIDDEN, "only the device's owner, a facilitator or the operator can do this")


OwnedDeviceDep = Annotated[Device, Depends(owned_device)]
ManagedDeviceDep = Annotated[Device, Depends(managed_device)]
