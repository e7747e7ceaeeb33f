"""Open data for anyone: readings their owners agreed to publish, as JSON pages or one streamed CSV.

Every response carries the licence and attribution (body and `Link: <...>; rel="license"` header).
"""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session

from firmware.quantities import QUANTITIES
from hub import open_data
from hub.api.deps import SessionDep, SettingsDep
from hub.settings import Settings
from hub.timeutil import utcnow

router = APIRouter(prefix="/open", tags=["open data"])

# Rows fetched per query while streaming CSV: memory stays flat however many rows match.
CSV_CHUNK_ROWS = 5000


class OpenMeta(BaseModel):
    licence: str
    licence_url: str
    attribution: str
    source: str = Field(description="the hub that published the data")
    generated_at: str = Field(description="when this response was made (ISO 8601 UTC)")


class OpenReading(BaseModel):
    id: int = Field(description="the reading's id: the keyset order of every listing")
    device: str = Field(description="the device's public id")
    kind: str
    placement: str
    location_release: str = Field(description="what location the owner agreed to release: none, area or h3")
    area: str | None = Field(description="the named area, when location_release is 'area'")
    h3_cell: str | None = Field(description="the H3 cell at the agreed resolution, when location_release is 'h3'")
    quantity: str
    unit: str
    value: float
    measured_at: str = Field(description="ISO 8601 UTC; the start of the hour when time_release is 'hour'")
    time_release: str = Field(description="exact, or hour")
    agreement_id: int = Field(description="the consent agreement the reading was received under")


class OpenReadingPage(BaseModel):
    meta: OpenMeta
    readings: list[OpenReading]
    next: str | None = Field(description="URL of the next page, or null on the last page")


class QuantitySummary(BaseModel):
    name: str
    unit: str
    label: str
    readings: int = Field(description="open readings of this quantity")
    devices: int = Field(description="devices with open readings of this quantity")


class OpenIndex(BaseModel):
    meta: OpenMeta
    readings_url: str
    csv_url: str
    quantities: list[QuantitySummary]


def meta(settings: Settings, now: datetime) -> OpenMeta:
    return OpenMeta(
        licence=settings.open_data_licence,
        licence_url=settings.open_data_licence_url,
        attribution=settings.open_data_attribution,
        source=settings.hub_name,
        generated_at=open_data.iso_utc(now),
    )


def header_text(text: str) -> str:
    """HTTP header values are Latin-1: percent-encode anything else (an attribution may name a place in Welsh)."""
    return quote(text, safe=" !#$&'()*+,/:;=?@[]~") if not text.isascii() else text


def licence_link(settings: Settings) -> str:
    return f'<{settings.open_data_licence_url}>; rel="license"'


def as_utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def open_filter(
    area: str | None, quantity: str | None, device: str | None, since: datetime | None, until: datetime | None
) -> open_data.OpenFilter:
    if quantity is not None and quantity not in QUANTITIES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"quantity: unknown quantity '{quantity}', choose from {', '.join(QUANTITIES)}",
        )
    return open_data.OpenFilter(area, quantity, device, as_utc(since), as_utc(until))


AreaQuery = Annotated[str | None, Query(description="only devices that released this area")]
QuantityQuery = Annotated[str | None, Query(description="a quantity name from the registry, e.g. pm2_5")]
DeviceQuery = Annotated[str | None, Query(description="a device's public id")]
SinceQuery = Annotated[datetime | None, Query(description="published measured_at at or after this (UTC if no zone)")]
UntilQuery = Annotated[datetime | None, Query(description="published measured_at before this (UTC if no zone)")]


def csv_lines(engine: Engine, filters: open_data.OpenFilter, now: datetime, chunk: int) -> Iterator[str]:
    """The header, then every matching row, fetched in keyset chunks each in its own short session (so a long
    download holds no transaction open, and a withdrawal takes effect in the chunks still to come)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(open_data.COLUMNS)
    yield flush()
    after = None
    while True:
        with Session(engine) as session:
            rows = session.exec(open_data.open_readings(filters, now, after, chunk)).all()  # type: ignore[call-overload]
        for row in rows:
            writer.writerow(open_data.csv_values(open_data.public_row(row)))
        if rows:
            yield flush()
        if len(rows) < chunk:
            return
        after = rows[-1].id


def csv_response(request: Request, settings: Settings, filters: open_data.OpenFilter) -> StreamingResponse:
    lines = csv_lines(request.app.state.engine, filters, utcnow(), CSV_CHUNK_ROWS)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="open-readings.csv"',
            "Link": licence_link(settings),
            "X-Licence": header_text(settings.open_data_licence),
            "X-Attribution": header_text(settings.open_data_attribution),
            "X-Source": header_text(settings.hub_name),
        },
    )


@router.get("", response_model=OpenIndex)
def open_index(request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> OpenIndex:
    """What this hub publishes: licence, attribution, and each quantity with its unit and how much open data."""
    now = utcnow()
    rows = session.exec(open_data.open_counts(now)).all()  # type: ignore[call-overload]
    counts = {quantity: (int(readings), int(devices)) for quantity, readings, devices in rows}
    response.headers["Link"] = licence_link(settings)
    return OpenIndex(
        meta=meta(settings, now),
        readings_url=str(request.url_for("open_readings")),
        csv_url=str(request.url_for("open_readings_csv")),
        quantities=[QuantitySummary(**q) for q in open_data.quantity_summary(counts)],
    )


@router.get("/readings", response_model=OpenReadingPage, name="open_readings")
def open_readings(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    area: AreaQuery = None,
    quantity: QuantityQuery = None,
    device: DeviceQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    after: Annotated[int | None, Query(description="continue after this reading id (from `next`)")] = None,
    limit: Annotated[int, Query(ge=1, le=10000, description="rows per page, 1 to 10000")] = 1000,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every matching row, streamed")] = "json",
) -> Any:
    """Open readings, oldest id first, a page at a time: follow `next` (or the `Link: rel="next"` header)."""
    filters = open_filter(area, quantity, device, since, until)
    if format == "csv":
        return csv_response(request, settings, filters)
    now = utcnow()
    rows = session.exec(open_data.open_readings(filters, now, after, limit)).all()  # type: ignore[call-overload]
    links = [licence_link(settings)]
    next_url = None
    if len(rows) == limit:
        next_url = str(request.url.include_query_params(after=rows[-1].id))
        links.insert(0, f'<{next_url}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    return {"meta": meta(settings, now), "readings": [open_data.public_row(r) for r in rows], "next": next_url}


@router.get("/readings.csv", name="open_readings_csv", response_class=StreamingResponse)
def open_readings_csv(
    request: Request,
    settings: SettingsDep,
    area: AreaQuery = None,
    quantity: QuantityQuery = None,
    device: DeviceQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Every matching open reading as CSV, streamed; licence and attribution in the response headers."""
    return csv_response(request, settings, open_filter(area, quantity, device, since, until))
