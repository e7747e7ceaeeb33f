"""Ingest's database edge: look up a batch's devices in one query, store a batch in one transaction.

Rows go in with batched Core inserts (one statement for many rows): an ORM object per row is ~20x slower.
`ON CONFLICT DO NOTHING` on (device, seq, quantity) makes a redelivered record a no-op.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from hub.ingest.pipeline import Batch, Message, Stamp, process
from hub.models import Agreement, AgreementStatus, Device, Reading, Rejection
from hub.settings import Settings

READING: Table = Reading.__table__  # type: ignore[assignment]
REJECTION: Table = Rejection.__table__  # type: ignore[assignment]


def lookup(conn: Connection, public_ids: Iterable[str]) -> dict[str, Stamp]:
    """public id -> Stamp for every device among `public_ids`; unknown ids are left out. One query."""
    wanted = sorted({p for p in public_ids if p is not None})
    if not wanted:
        return {}
    newest = (
        select(Agreement.device_id, func.max(Agreement.id).label("agreement_id"))  # type: ignore[arg-type]
        .group_by(Agreement.device_id)
        .subquery()
    )
    agreement = aliased(Agreement)
    query = (
        select(Device.id, Device.public_id, agreement.id, agreement.status)  # type: ignore[call-overload]
        .where(Device.public_id.in_(wanted))  # type: ignore[attr-defined]
        .outerjoin(newest, newest.c.device_id == Device.id)
        .outerjoin(agreement, agreement.id == newest.c.agreement_id)
    )
    stamps = {}
    for device_id, public_id, agreement_id, status in conn.execute(query):
        in_force = agreement_id if status == AgreementStatus.active else None
        stamps[public_id] = Stamp(device_id, in_force)
    return stamps


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def save(conn: Connection, batch: Batch) -> int:
    """Insert the batch's readings (skipping ones already stored) and rejections. Returns readings stored.

    Runs in the caller's transaction, so readings and rejections commit together or not at all.
    """
    stored = 0
    if batch.readings:
        statement = (
            _insert(conn, READING)
            .on_conflict_do_nothing(index_elements=["device_id", "seq", "quantity"])
            .returning(READING.c.id)
        )
        stored = len(conn.execute(statement, batch.readings).all())
    if batch.rejections:
        conn.execute(REJECTION.insert(), batch.rejections)
    return stored




def ingest(engine: Engine, messages: Sequence[Message], settings: Settings) -> tuple[Batch, int]:
    """Run messages through the pipeline and store the result, all in one transaction.

    The lookup shares the transaction, so each reading carries the agreement in force when it was stored.
    Returns the batch (with one Outcome per message) and how many readings were new.
    """
    with engine.begin() as conn:
        devices = lookup(conn, [m.device for m in messages if m.device is not None])
        batch = process(
            messages,
            devices,
            max_message_bytes=settings.max_message_bytes,
            max_future_seconds=settings.max_future_seconds,
        )
        return batch, save(conn, batch)
