"""Facilitator keys, issued by the operator for workshops."""

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from hub.api.deps import OperatorDep, SessionDep
from hub.models import ApiKey, Role
from hub.security import new_token, token_hash

router = APIRouter(prefix="/keys", tags=["keys"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="who holds the key, e.g. 'Easton workshop team'")


class KeyIssued(BaseModel):
    name: str
    role: Role
    key: str = Field(description="the facilitator key: shown only now")
    created_at: datetime


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyIssued)
def issue_facilitator_key(body: KeyCreate, _: OperatorDep, session: SessionDep) -> KeyIssued:
    key = new_token("fac")
    row = ApiKey(name=body.name, role=Role.facilitator, key_hash=token_hash(key))
    session.add(row)
    session.commit()
    session.refresh(row)
    return KeyIssued(name=row.name, role=Role.facilitator, key=key, created_at=row.created_at)
