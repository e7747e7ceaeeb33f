"""Open data: which readings may be published, and the public form of each one.

Pure functions only (query builders, row mappers); the router in hub/api/open.py does the I/O.

A reading is open when the agreement it was received under shares it openly and has not been withdrawn, its device
is real (not simulated) and outdoors, and it is still within the agreement's retention. Indoor (home) readings are
published only as area aggregates over enough homes, never row by row, so they are not here.

Location and time are released only at the precision the resident agreed to: the area name or an H3 cell computed
from the private latitude/longitude (never the coordinates themselves); the exact time or the hour it fell in.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import h3
from sqlalchemy import ColumnElement, Select, and_, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col, func, select

from firmware.quantities import QUANTITIES
from hub.models import (
    Agreement,
    AgreementStatus,
    Device,
    LocationRelease,
    Placement,
    Reading,
    Sharing,
    TimeRelease,
)
from hub.readings import unit
from hub.timeutil import UTCDateTime

# The columns of every open-data output, in order: the CSV header and the JSON field names.
COLUMNS = (
    "id",
    "device",
    "kind",
    "placement",
    "location_release",
    "area",
    "h3_cell",
    "quantity",
    "unit",
    "value",
    "measured_at",
    "time_release",
    "agreement_id",
)


@dataclass(frozen=True)
class OpenFilter:
    """What a researcher asked for. Times are UTC and compare with measured_at as published."""

    area: str | None = None
    quantity: str | None = None
    device: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


# --- Retention: "now minus N days" where N is a column, on each database -------------------------------------


class days_before(FunctionElement[datetime]):
    """`moment` minus `days` days, comparable with a stored UTC datetime."""

    type = UTCDateTime()
    inherit_cache = True
    name = "days_before"


@compiles(days_before, "postgresql")
def _days_before_postgresql(element: days_before, compiler: Any, **kw: Any) -> str:
    moment, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"({moment} - make_interval(days => {days}))"


@compiles(days_before, "sqlite")
def _days_before_sqlite(element: days_before, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text, which compares correctly as text.
    moment, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"strftime('%Y-%m-%d %H:%M:%f', {moment}, '-' || {days} || ' days')"


# --- The query ---------------------------------------------------------------------------------------------


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _published_time_at_least(moment: datetime) -> ColumnElement[bool]:
    """The reading's published time is >= moment. For hourly release, floor(t) >= m exactly when t >= ceil(m):
    filtering on the raw time would let a caller bisect the exact minute the resident agreed to hide."""
    return or_(
        and_(Agreement.time_release == TimeRelease.exact, col(Reading.measured_at) >= moment),
        and_(Agreement.time_release == TimeRelease.hour, col(Reading.measured_at) >= _ceil_hour(moment)),
    )


def _published_time_before(moment: datetime) -> ColumnElement[bool]:
    """The reading's published time is < moment (floor(t) < m exactly when t < ceil(m))."""
    return or_(
        and_(Agreement.time_release == TimeRelease.exact, col(Reading.measured_at) < moment),
        and_(Agreement.time_release == TimeRelease.hour, col(Reading.measured_at) < _ceil_hour(moment)),
    )


def open_conditions(filters: OpenFilter, now: datetime) -> list[ColumnElement[bool]]:
    """The WHERE clauses for open readings matching `filters`, over Reading joined to Device and Agreement."""
    retained = or_(
        col(Agreement.retention_days).is_(None),
        col(Reading.measured_at) > days_before(literal(now, UTCDateTime()), Agreement.retention_days),
    )
    conditions: list[ColumnElement[bool]] = [
        Agreement.sharing == Sharing.open,
        Agreement.status == AgreementStatus.active,
        col(Device.simulated).is_(False),
        Device.placement == Placement.outdoor,
        retained,
    ]
    if filters.area is not None:
        # Only devices that agreed to release their area can be found by it.
        conditions += [Device.area == filters.area, Agreement.location_release == LocationRelease.area]
    if filters.quantity is not None:
        conditions.append(Reading.quantity == filters.quantity)
    if filters.device is not None:
        conditions.append(Device.public_id == filters.device)
    if filters.since is not None:
        conditions.append(_published_time_at_least(filters.since))
    if filters.until is not None:
        conditions.append(_published_time_before(filters.until))
    return conditions


def open_readings(filters: OpenFilter, now: datetime, after: int | None = None, limit: int | None = None) -> Select:
    """Open readings in reading-id order, after the keyset token `after`: only the columns the mapper needs."""
    query = (
        select(
            Reading.id,
            Reading.quantity,
            Reading.value,
            Reading.measured_at,
            Reading.agreement_id,
            Device.public_id,
            Device.kind,
            Device.placement,
            Device.area,
            Device.latitude,
            Device.longitude,
            Agreement.location_release,
            Agreement.location_h3_resolution,
            Agreement.time_release,
        )
        .join(Device, col(Reading.device_id) == col(Device.id))
        .join(Agreement, col(Reading.agreement_id) == col(Agreement.id))
        .where(*open_conditions(filters, now))
    )
    if after is not None:
        query = query.where(col(Reading.id) > after)
    query = query.order_by(col(Reading.id))
    return query if limit is None else query.limit(limit)


def open_counts(now: datetime) -> Select:
    """(quantity, readings, devices) for every quantity that has open readings."""
    return (
        select(Reading.quantity, func.count(), func.count(func.distinct(Reading.device_id)))
        .join(Device, col(Reading.device_id) == col(Device.id))
        .join(Agreement, col(Reading.agreement_id) == col(Agreement.id))
        .where(*open_conditions(OpenFilter(), now))
        .group_by(Reading.quantity)
    )


# --- The public form of a reading --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def h3_cell(latitude: float, longitude: float, resolution: int) -> str:
    return h3.latlng_to_cell(latitude, longitude, resolution)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, e.g. 2026-11-20T10:00:00Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def released_time(measured_at: datetime, time_release: TimeRelease) -> datetime:
    if time_release == TimeRelease.hour:
        return measured_at.replace(minute=0, second=0, microsecond=0)
    return measured_at


def released_location(row: Any) -> tuple[str, str]:
    """(area, h3 cell) as agreed: one of them, or neither. The coordinates themselves never leave."""
    if row.location_release == LocationRelease.area:
        return row.area, ""
    if (
        row.location_release == LocationRelease.h3
        and row.latitude is not None
        and row.longitude is not None
        and row.location_h3_resolution is not None
    ):
        return "", h3_cell(row.latitude, row.longitude, row.location_h3_resolution)
    return "", ""


def public_row(row: Any) -> dict[str, Any]:
    """One open reading, from a row of `open_readings` (reading, device and agreement columns by name)."""
    area, cell = released_location(row)
    return {
        "id": row.id,
        "device": row.public_id,
        "kind": str(row.kind),
        "placement": str(row.placement),
        "location_release": str(row.location_release),
        "area": area or None,
        "h3_cell": cell or None,
        "quantity": row.quantity,
        "unit": unit(row.quantity),
        "value": row.value,
        "measured_at": iso_utc(released_time(row.measured_at, row.time_release)),
        "time_release": str(row.time_release),
        "agreement_id": row.agreement_id,
    }


def csv_values(public: dict[str, Any]) -> list[Any]:
    """A public row as CSV cells, in COLUMNS order; missing values are empty cells."""
    return ["" if public[name] is None else public[name] for name in COLUMNS]


def quantity_summary(counts: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Every quantity in the registry with its unit, label and how many open readings/devices have it."""
    return [
        {
            "name": name,
            "unit": spec["unit"],
            "label": spec["label"],
            "readings": counts.get(name, (0, 0))[0],
            "devices": counts.get(name, (0, 0))[1],
        }
        for name, spec in QUANTITIES.items()
    ]
