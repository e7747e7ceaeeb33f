"""LoRaWAN ingest: uplinks POSTed by The Things Stack v3 (webhook) and ChirpStack v4 (HTTP integration).

    POST /api/v1/ingest/ttn                    body: a TTN v3 uplink message (webhook format JSON)
    POST /api/v1/ingest/chirpstack?event=up    body: a ChirpStack v4 uplink event (payload encoding JSON)
    Authorization: Bearer <SENSING_LORAWAN_TTN_SECRET or SENSING_LORAWAN_CHIRPSTACK_SECRET>
    -> {"device": "air-7kq2m9xp", "seq": 17, "accepted": 8, "duplicates": 0, "rejected": [], "note": ""}

The network server is trusted to say which device sent what, so each integration has its own secret, set by
the operator and pasted into the network server's console. The same pipeline as MQTT and HTTP ingest stores the
readings with transport `lorawan`, and an uplink on the status port as the device's last status. A body the hub
cannot use answers 4xx with what to fix, recorded as a rejection; an uplink with nothing to store (MAC commands
only; ChirpStack's other events) answers 200 with a note.
"""

import hmac
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool

from hub.api.deps import unauthorized
from hub.api.ingest import STATUS, IngestResult, RejectedReading, read_body
from hub.ingest import lorawan, pipeline
from hub.ingest.pipeline import Message, Refusal, Rejected, Stamp
from hub.ingest.store import REJECTION, ingest, lookup
from hub.models import Reading, Transport
from hub.settings import Settings
from hub.timeutil import utcnow

router = APIRouter(tags=["ingest"])


class LorawanResult(IngestResult):
    device: str | None = None
    seq: int | None = None
    note: str = ""


def _record(engine: Engine, message: Message, reason: str, stamp: Stamp | None = None,
            rejected: list[Rejected] | None = None) -> None:
    rows = [pipeline.rejection_row(message, stamp, r) for r in rejected or [Rejected(None, None, None, reason)]]
    with engine.begin() as conn:
        conn.execute(REJECTION.insert(), rows)


def _refuse(engine: Engine, message: Message, reason: str, code: int, stamp: Stamp | None = None) -> HTTPException:
    _record(engine, message, reason, stamp)
    return unauthorized(reason) if code == status.HTTP_401_UNAUTHORIZED else HTTPException(code, reason)


def _last_seq(engine: Engine, device: str) -> tuple[Stamp | None, int | None]:
    """The device's stamp and the highest device seq stored for it (CayenneLPP's time seqs left out)."""
    with engine.connect() as conn:
        stamp = lookup(conn, [device]).get(device)
        if stamp is None:
            return None, None
        last = conn.execute(
            select(func.max(Reading.seq)).where(  # type: ignore[arg-type]
                Reading.device_id == stamp.device_id, Reading.seq < lorawan.TIME_SEQ_FLOOR  # type: ignore[arg-type]
            )
        ).scalar()
        return stamp, last


def _check_secret(engine: Engine, secret: str, network: str, setting: str,
                  authorization: str | None, message: Message) -> None:
    if not secret:
        reason = f"this hub does not take {network} uplinks: its operator has not set {setting}"
        raise _refuse(engine, message, reason, status.HTTP_403_FORBIDDEN)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        reason = f"this needs the {network} integration secret: add the header 'Authorization: Bearer <{setting}>'"
        raise _refuse(engine, message, reason, status.HTTP_401_UNAUTHORIZED)
    if not hmac.compare_digest(token.strip().encode(), secret.strip().encode()):
        reason = f"the {network} integration secret was not recognised: check it matches {setting}"
        raise _refuse(engine, message, reason, status.HTTP_401_UNAUTHORIZED)


def _ingest(engine: Engine, settings: Settings, network: str, body: bytes, too_big: bool, received_at: Any,
            authorization: str | None) -> LorawanResult:
    secret, setting = {
        "TTN": (settings.lorawan_ttn_secret, "SENSING_LORAWAN_TTN_SECRET"),
        "ChirpStack": (settings.lorawan_chirpstack_secret, "SENSING_LORAWAN_CHIRPSTACK_SECRET"),
    }[network]
    raw = Message(Transport.lorawan, None, body, received_at)
    _check_secret(engine, secret, network, setting, authorization, raw)
    if too_big:
        reason = pipeline.oversize_reason(None, settings.max_message_bytes)
        raise _refuse(engine, raw, reason, status.HTTP_413_CONTENT_TOO_LARGE)
    try:
        uplink = (lorawan.ttn_uplink if network == "TTN" else lorawan.chirpstack_uplink)(body)
    except lorawan.UplinkError as exc:
        claimed = Message(Transport.lorawan, exc.device, body, received_at)
        stamp = _last_seq(engine, exc.device)[0] if exc.device else None
        raise _refuse(engine, claimed, exc.reason, status.HTTP_400_BAD_REQUEST, stamp) from None
    if not uplink.payload or not uplink.f_port:
        return LorawanResult(accepted=0, duplicates=0, rejected=[], device=uplink.device,
                             note="the uplink carries no application payload (MAC commands only): nothing to store")
    stamp, last_seq = _last_seq(engine, uplink.device)
    claimed = Message(Transport.lorawan, uplink.device, lorawan.payload_excerpt(uplink), received_at)
    if stamp is None:
        reason = (f"there is no device '{uplink.device}': name the end device in {network} with the hub's device "
                  f"id (e.g. air-7kq2m9xp), or register it with the hub first")
        raise _refuse(engine, claimed, reason, status.HTTP_404_NOT_FOUND)
    if uplink.f_port == settings.lorawan_status_port:
        return _status(engine, settings, uplink, claimed, stamp, received_at)
    try:
        decoded = lorawan.message(uplink, compact_port=settings.lorawan_compact_port,
                                  channels=settings.lorawan_cayenne_channels, last_seq=last_seq,
                                  received_at=received_at)
    except lorawan.UplinkError as exc:
        raise _refuse(engine, claimed, exc.reason, status.HTTP_400_BAD_REQUEST, stamp) from None
    batch, stored = ingest(engine, [decoded.message], settings)
    outcome = batch.outcomes[0]
    if outcome.refusal == Refusal.unidentified:  # deleted between the two queries
        raise HTTPException(status.HTTP_404_NOT_FOUND, outcome.reason)
    if outcome.refusal is not None:
        raise HTTPException(STATUS[outcome.refusal], outcome.reason)
    skipped = [Rejected(0, decoded.seq, None, why) for why in decoded.skipped]
    if skipped:
        _record(engine, claimed, "", stamp, skipped)
    return LorawanResult(
        accepted=stored,
        duplicates=outcome.readings - stored,
        rejected=[RejectedReading(index=r.index, seq=r.seq, quantity=r.quantity, reason=r.reason)
                  for r in outcome.rejected + skipped],
        device=uplink.device,
        seq=decoded.seq,
    )


def _status(engine: Engine, settings: Settings, uplink: lorawan.Uplink, claimed: Message, stamp: Stamp,
            received_at: Any) -> LorawanResult:
    """Keep a status uplink as the device's last status."""
    try:
        message = lorawan.status_message(uplink, received_at)
    except lorawan.UplinkError as exc:
        raise _refuse(engine, claimed, exc.reason, status.HTTP_400_BAD_REQUEST, stamp) from None
    outcome = ingest(engine, [message], settings)[0].outcomes[0]
    if outcome.refusal == Refusal.unidentified:  # deleted between the two queries
        raise HTTPException(status.HTTP_404_NOT_FOUND, outcome.reason)
    if outcome.refusal is not None:
        raise HTTPException(STATUS[outcome.refusal], outcome.reason)
    return LorawanResult(accepted=0, duplicates=0, rejected=[], device=uplink.device,
                         note="the device's status: kept as its last status")


async def _receive(request: Request, network: str) -> LorawanResult:
    settings: Settings = request.app.state.settings
    received_at = utcnow()
    body, too_big = await read_body(request, settings.max_message_bytes)
    authorization = request.headers.get("authorization")
    # The database work runs off the event loop, which also serves the embedded MQTT broker.
    return await run_in_threadpool(_ingest, request.app.state.engine, settings, network, body, too_big, received_at,
                                   authorization)


@router.post("/ingest/ttn", response_model=LorawanResult)
async def ttn_uplink(request: Request) -> LorawanResult:
    """Store the readings of one TTN v3 uplink message (webhook, format JSON, 'Uplink message' enabled)."""
    return await _receive(request, "TTN")


@router.post("/ingest/chirpstack", response_model=LorawanResult)
async def chirpstack_event(
    request: Request, event: str = Query(description="ChirpStack's event type: up, join, status, ...")
) -> LorawanResult:
    """Store the readings of one ChirpStack v4 uplink event; other events (join, status, ...) are acknowledged."""
    if event != "up":
        # ChirpStack posts every event type to the one URL: only uplinks carry readings.
        return LorawanResult(accepted=0, duplicates=0, rejected=[],
                             note=f"ChirpStack '{event[:20]}' events carry no readings: ignored")
    return await _receive(request, "ChirpStack")
