"""Reading queries shared by the owner's API and the exports."""

from datetime import datetime

from sqlmodel import Session, col, select

from firmware.quantities import QUANTITIES
from hub.models import Reading, ReadingPublic


def unit(quantity: str) -> str:
    return QUANTITIES[quantity]["unit"] if quantity in QUANTITIES else ""


def public(row: Reading) -> ReadingPublic:
    return ReadingPublic(**row.model_dump(), unit=unit(row.quantity))


def for_device(
    session: Session,
    device_id: int,
    quantity: str | None,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    limit: int,
    newest_first: bool = False,
    before: int | None = None,
) -> list[Reading]:
    """The device's readings in the order they arrived (newest first if asked), after or before a reading id."""
    query = select(Reading).where(Reading.device_id == device_id)
    if quantity:
        query = query.where(Reading.quantity == quantity)
    if since:
        query = query.where(Reading.measured_at >= since)
    if until:
        query = query.where(Reading.measured_at < until)
    if after is not None:
        query = query.where(col(Reading.id) > after)
    if before is not None:
        query = query.where(col(Reading.id) < before)
    order = col(Reading.id).desc() if newest_first else col(Reading.id)
    return list(session.exec(query.order_by(order).limit(limit)))
