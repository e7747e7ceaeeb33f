"""HTTP ingest: a device posts a record, or a list of records, with its secret as the bearer token.

    curl -X POST http://127.0.0.1:8000/api/v1/ingest -H "Authorization: Bearer $DEVICE_SECRET" \
         -d '{"seq": 17, "t": 1795860238, "v": {"temperature": 21.4, "humidity": 63.5}}'
    {"accepted": 2, "duplicates": 0, "rejected": []}

The same pipeline as MQTT. Refusing a whole message answers 400, 401, 403 or 413 with the reason, and records it.
"""

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from hub import devices
from hub.api.deps import BearerDep, unauthorized
from hub.ingest import pipeline
from hub.ingest.pipeline import Message, Refusal
from hub.ingest.store import REJECTION, ingest
from hub.models import Transport
from hub.settings import Settings
from hub.timeutil import utcnow

router = APIRouter(tags=["ingest"])

STATUS = {
    Refusal.unreadable: status.HTTP_400_BAD_REQUEST,
    Refusal.oversize: status.HTTP_413_CONTENT_TOO_LARGE,
    Refusal.no_consent: status.HTTP_403_FORBIDDEN,
}


class RejectedReading(BaseModel):
    index: int | None = Field(description="the record's place in the message (0 for a single record)")
    seq: int | None
    quantity: str | None = Field(description="set when one value of the record was refused")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="readings (one per quantity) stored now")
    duplicates: int = Field(description="readings the hub already held (a resent record): nothing changed")
    rejected: list[RejectedReading]


def _refuse(engine: Engine, message: Message, reason: str, code: int, device_id: int | None = None) -> HTTPException:
    stamp = pipeline.Stamp(device_id, None) if device_id is not None else None
    row = pipeline.rejection_row(message, stamp, pipeline.Rejected(None, None, None, reason))
    with engine.begin() as conn:
        conn.execute(REJECTION.insert(), [row])
    return unauthorized(reason) if code == status.HTTP_401_UNAUTHORIZED else HTTPException(code, reason)


async def read_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, read no further than `limit` + 1 bytes; and whether there was more than `limit`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    body = b"".join(parts)
    return body[: limit + 1], size > limit


def _declared_size(request: Request) -> int | None:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _ingest(
    engine: Engine, settings: Settings, credentials: HTTPAuthorizationCredentials | None, message: Message,
    oversize: int | None,
) -> IngestResult:
    if credentials is None:
        reason = "this needs the device secret: send it as 'Authorization: Bearer <device secret>'"
        raise _refuse(engine, message, reason, status.HTTP_401_UNAUTHORIZED)
    with Session(engine) as session:
        device = devices.by_secret(session, credentials.credentials)
    if device is None:
        reason = "the device secret was not recognised: check it was copied whole"
        raise _refuse(engine, message, reason, status.HTTP_401_UNAUTHORIZED)
    message = Message(Transport.http, device.public_id, message.payload, message.received_at)
    if oversize is not None:  # only the start was read: say how big the whole was, when the client told us
        reason = pipeline.oversize_reason(oversize or None, settings.max_message_bytes)
        raise _refuse(engine, message, reason, status.HTTP_413_CONTENT_TOO_LARGE, device.id)
    batch, stored = ingest(engine, [message], settings)
    outcome = batch.outcomes[0]
    if outcome.refusal == Refusal.unidentified:  # the device was deleted between the two queries
        raise unauthorized(outcome.reason)
    if outcome.refusal is not None:
        raise HTTPException(STATUS[outcome.refusal], outcome.reason)
    return IngestResult(
        accepted=stored,
        duplicates=outcome.readings - stored,
        rejected=[RejectedReading(index=r.index, seq=r.seq, quantity=r.quantity, reason=r.reason)
                  for r in outcome.rejected],
    )


@router.post("/ingest", response_model=IngestResult)
async def ingest_readings(request: Request, credentials: BearerDep) -> IngestResult:
    """Store readings sent by a device. Body: one record `{"seq", "t", "v"}` or a list of them."""
    settings: Settings = request.app.state.settings
    received_at = utcnow()
    body, too_big = await read_body(request, settings.max_message_bytes)
    oversize = (_declared_size(request) or 0) if too_big else None
    message = Message(Transport.http, None, body, received_at)
    # The database work runs off the event loop, which also serves the embedded MQTT broker.
    return await run_in_threadpool(_ingest, request.app.state.engine, settings, credentials, message, oversize)
