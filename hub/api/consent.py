"""Consent texts: the exact wording a resident saw, by version, with its hash."""

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from hub.api.deps import OperatorDep, SessionDep
from hub.consent import PURPOSES, wording_sha256
from hub.models import ConsentText, ConsentTextPublic

router = APIRouter(prefix="/consent", tags=["consent"])


class ConsentTextCreate(BaseModel):
    version: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    wording: str = Field(min_length=20)


@router.get("/texts", response_model=list[ConsentTextPublic])
def list_texts(session: SessionDep) -> list[ConsentText]:
    return list(session.exec(select(ConsentText).order_by(col(ConsentText.id))))


@router.get("/texts/{version}", response_model=ConsentTextPublic)
def get_text(version: str, session: SessionDep) -> ConsentText:
    text = session.exec(select(ConsentText).where(ConsentText.version == version)).first()
    if text is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no consent text version '{version}'")
    return text


@router.post("/texts", status_code=status.HTTP_201_CREATED, response_model=ConsentTextPublic)
def add_text(body: ConsentTextCreate, _: OperatorDep, session: SessionDep) -> ConsentText:
    """Publish a new consent wording. Wordings are never edited: a change is a new version."""
    if session.exec(select(ConsentText).where(ConsentText.version == body.version)).first():
        raise HTTPException(status.HTTP_409_CONFLICT, f"consent text version '{body.version}' already exists")
    text = ConsentText(version=body.version, wording=body.wording, sha256=wording_sha256(body.wording))
    session.add(text)
    session.commit()
    session.refresh(text)
    return text


@router.get("/purposes", response_model=dict[str, str])
def list_purposes() -> dict[str, str]:
    """The purposes a resident can agree to, with what each means."""
    return PURPOSES
