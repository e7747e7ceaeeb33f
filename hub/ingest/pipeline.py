"""The ingest pipeline, as pure functions: messages in, reading, status and rejection rows out.

Every transport (MQTT, HTTP, LoRaWAN webhooks) turns what it received into `Message`s, looks up the devices
they claim to come from (one query per batch, see hub.ingest.store.lookup) and hands both to `process`. Nothing
here touches the network or the database, so every rule about what is accepted is tested without either.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from firmware import codec
from hub.models import Transport
from hub.timeutil import from_epoch

EXCERPT_CHARS = 120
MAX_SEQ = 2**63 - 1  # the store keeps seq in a signed 64-bit column
LAST_DATETIME = 253402300800  # 10000-01-01: Python's datetime ends before


class Refusal(StrEnum):
    """Why a whole message was refused; each edge translates it once (an HTTP status, a log line)."""

    unreadable = "unreadable"  # not UTF-8, not JSON, or not records
    unidentified = "unidentified"  # no device by that id or secret
    oversize = "oversize"
    no_consent = "no_consent"


@dataclass(frozen=True)
class Message:
    """One message as a transport received it. `device` is the public id it claims (topic, secret lookup).
    `status`: the device's status (firmware/status.py) rather than readings; `retained`: a status the broker kept
    and hands over again at every subscription, rather than one the device has just sent."""

    transport: Transport
    device: str | None
    payload: bytes
    received_at: datetime
    status: bool = False
    retained: bool = False


@dataclass(frozen=True)
class Stamp:
    """A device as ingest needs it: its row id and the agreement in force now (None once consent is withdrawn)."""

    device_id: int
    agreement_id: int | None


@dataclass(frozen=True)
class Rejected:
    """One refused record or value of a message: `index` is the record's place in the message."""

    index: int | None
    seq: int | None
    quantity: str | None
    reason: str


@dataclass
class Outcome:
    """What became of one message."""

    refusal: Refusal | None = None  # set when the message as a whole was refused
    reason: str = ""  # the sentence for a refusal
    readings: int = 0  # reading rows made (before the store drops ones it already holds)
    rejected: list[Rejected] = field(default_factory=list)
    status: bool = False  # a status row made


@dataclass
class Batch:
    """Rows for the store, plus one Outcome per message in the order given."""

    readings: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)  # each device's last in hub.ingest.store
    outcomes: list[Outcome] = field(default_factory=list)


def _clean(text: str, limit: int) -> str:
    # PostgreSQL refuses NUL in text, and a log reader deserves no terminal escapes: show control characters.
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def excerpt(payload: bytes) -> str:
    """The start of a payload, readable whatever it holds."""
    head = payload[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return _clean(head, EXCERPT_CHARS)


def rejection_row(message: Message, stamp: Stamp | None, rejected: Rejected) -> dict[str, Any]:
    """A Rejection row; every row has the same keys so the store inserts a batch in one statement."""
    return {
        "received_at": message.received_at,
        "transport": message.transport.value,
        "device_id": stamp.device_id if stamp else None,
        "claimed_device": _clean(message.device, 100) if message.device is not None else None,
        "seq": rejected.seq,
        "quantity": _clean(rejected.quantity, 64) if rejected.quantity is not None else None,
        "reason": _clean(rejected.reason, 300),
        "excerpt": excerpt(message.payload),
    }


def refuse(message: Message, stamp: Stamp | None, refusal: Refusal, reason: str, batch: Batch) -> Outcome:
    """Refuse a whole message: one rejection row, and an Outcome saying why."""
    batch.rejections.append(rejection_row(message, stamp, Rejected(None, None, None, reason)))
    return Outcome(refusal=refusal, reason=reason)


def oversize_reason(size: int | None, max_message_bytes: int) -> str:
    """Why a message is too big; `size` None when only the first bytes of it were read."""
    told = f"{size} bytes" if size is not None else "too big"
    return f"the message is {told}, more than the limit of {max_message_bytes} bytes"


def future_reason(t: int, now: datetime, max_future_seconds: int) -> str | None:
    if t - now.timestamp() <= max_future_seconds:
        return None
    when = f" ({from_epoch(t):%Y-%m-%d %H:%M:%S} UTC)" if t < LAST_DATETIME else ""
    return f"the time {t}{when} is more than {max_future_seconds} s ahead of the hub's clock: check the device's clock"


def _records(
    message: Message, stamp: Stamp, now: datetime, max_future_seconds: int, batch: Batch, outcome: Outcome
) -> None:
    records, errors = codec.decode_json(message.payload)
    # A malformed record's seq is not trusted, so its rejection carries none.
    outcome.rejected.extend(Rejected(index, None, None, reason) for index, reason in errors)
    if errors:
        malformed = {index for index, _ in errors}
        indexes: Sequence[int] = [i for i in range(len(records) + len(errors)) if i not in malformed]
    else:
        indexes = range(len(records))
    for index, record in zip(indexes, records, strict=True):
        seq, t = record["seq"], record["t"]
        if seq > MAX_SEQ:
            outcome.rejected.append(Rejected(index, None, None, f"'seq' {seq} is too large (at most {MAX_SEQ})"))
            continue
        too_late = future_reason(t, now, max_future_seconds)
        if too_late:
            outcome.rejected.append(Rejected(index, seq, None, too_late))
            continue
        good, bad = codec.validate(record["v"])
        outcome.rejected.extend(Rejected(index, seq, name, reason) for name, reason in bad)
        measured_at = from_epoch(t)
        for quantity, value in good.items():
            batch.readings.append(
                {
                    "device_id": stamp.device_id,
                    "quantity": quantity,
                    "value": float(value),
                    "measured_at": measured_at,
                    "received_at": message.received_at,
                    "seq": seq,
                    "agreement_id": stamp.agreement_id,
                    "transport": message.transport.value,
                }
            )
            outcome.readings += 1
    if outcome.rejected:
        outcome.rejected.sort(key=lambda r: r.index)  # in the message's order


def process_one(message: Message, stamp: Stamp | None, max_message_bytes: int, max_future_seconds: int,
                batch: Batch) -> Outcome:
    """Add one message's readings and rejections to `batch`; return what became of it."""
    if stamp is None:
        who = f"'{_clean(message.device, 100)}'" if message.device else "with that secret"
        return refuse(message, None, Refusal.unidentified, f"there is no device {who}", batch)
    if len(message.payload) > max_message_bytes:
        reason = oversize_reason(len(message.payload), max_message_bytes)
        return refuse(message, stamp, Refusal.oversize, reason, batch)
    if stamp.agreement_id is None:
        what = "status is" if message.status else "readings are"
        reason = f"consent for device '{message.device}' has been withdrawn, so its {what} refused"
        return refuse(message, stamp, Refusal.no_consent, reason, batch)
    if message.status:
        return _status(message, stamp, batch)
    outcome = Outcome()
    try:
        _records(message, stamp, message.received_at, max_future_seconds, batch, outcome)
    except codec.CodecError as exc:
        return refuse(message, stamp, Refusal.unreadable, str(exc), batch)
    batch.rejections.extend(rejection_row(message, stamp, r) for r in outcome.rejected)
    return outcome


def _status(message: Message, stamp: Stamp, batch: Batch) -> Outcome:
    try:
        status = codec.decode_status_json(message.payload)
    except codec.CodecError as exc:
        return refuse(message, stamp, Refusal.unreadable, str(exc), batch)
    batch.statuses.append(
        {
            "device_id": stamp.device_id,
            "status": codec.encode_json(status).decode(),  # keys sorted: the same status, the same text
            "received_at": message.received_at,
            "transport": message.transport.value,
            "retained": message.retained,
        }
    )
    return Outcome(status=True)


def process(
    messages: Sequence[Message],
    devices: Mapping[str, Stamp],
    *,
    max_message_bytes: int,
    max_future_seconds: int,
) -> Batch:
    """Decode, validate and stamp a batch of messages. `devices`: public id -> Stamp for the ids they claim."""
    batch = Batch()
    for message in messages:
        stamp = devices.get(message.device) if message.device is not None else None
        batch.outcomes.append(process_one(message, stamp, max_message_bytes, max_future_seconds, batch))
    return batch
