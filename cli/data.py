"""`sensing data download`: open data for an area, time range and quantities, as CSV or Parquet; resumable.

Rows come from the hub's JSON pages (GET /api/v1/open/readings), in reading-id order. Every complete page is
appended to `<output>.part` as CSV and then recorded in `<output>.part.state` (what was asked, the last reading id,
the rows and bytes written), so a download that is interrupted, even by a power cut, continues after its last
complete page when the same command is run again. Several quantities are several keyset streams merged by id:
each of them resumes after the same last id. Parquet is made from the finished CSV at the end.
"""

import csv
import heapq
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cli.app import abort, console, err_console
from cli.hubclient import DEFAULT_HUB, client, explain
from hub.open_data import COLUMNS

app = typer.Typer(help="Open data: download readings for an area, time range and quantities.", no_args_is_help=True)

OPEN_READINGS = "/api/v1/open/readings"


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"


@dataclass(frozen=True)
class Query:
    """What was asked for. A download resumes only when it is asked for again exactly."""

    hub: str
    area: str | None
    quantities: tuple[str, ...]
    device: str | None
    since: str | None
    until: str | None

    def params(self, quantity: str | None) -> dict[str, str]:
        given = {"area": self.area, "quantity": quantity, "device": self.device, "since": self.since,
                 "until": self.until}  # fmt: skip
        return {name: value for name, value in given.items() if value is not None}

    def describe(self) -> str:
        parts = [f"hub {self.hub}"]
        parts += [f"area {self.area}"] if self.area else []
        parts += [f"quantities {', '.join(self.quantities)}"] if self.quantities else []
        parts += [f"device {self.device}"] if self.device else []
        parts += [f"from {self.since}"] if self.since else []
        parts += [f"before {self.until}"] if self.until else []
        return "; ".join(parts)


@dataclass
class Checkpoint:
    """How far the .part file is complete: its size, its rows, and the id of its last row."""

    query: dict[str, Any]
    size: int = 0
    rows: int = 0
    after: int | None = None


def moment(option: str, text: str | None) -> str | None:
    """An ISO 8601 time as the hub compares it: a time without a zone is UTC."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        abort(escape(f"{option} '{text}' is not a time: write it like 2026-11-20 or 2026-11-20T10:00:00Z."))
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)).isoformat()


def chosen_format(output: Path, given: Format | None) -> Format:
    if given is not None:
        return given
    return Format.parquet if output.suffix.lower() in (".parquet", ".pq") else Format.csv


def sidecars(output: Path) -> tuple[Path, Path]:
    return output.with_name(output.name + ".part"), output.with_name(output.name + ".part.state")


def save_checkpoint(state: Path, checkpoint: Checkpoint) -> None:
    temporary = state.with_name(state.name + ".new")
    temporary.write_text(json.dumps(asdict(checkpoint)))
    os.replace(temporary, state)


def resume_point(output: Path, query: Query) -> Checkpoint:
    """Where to continue: after the last complete page of an unfinished download of the same query, or the start."""
    part, state = sidecars(output)
    wanted = asdict(query) | {"quantities": list(query.quantities)}
    try:
        saved = Checkpoint(**json.loads(state.read_text()))
    except (OSError, ValueError, TypeError):
        saved = None
    if saved is not None and saved.query == wanted and part.exists() and part.stat().st_size >= saved.size:
        with part.open("r+b") as file:
            file.truncate(saved.size)  # a page written but not yet recorded is fetched again
        return saved
    if saved is not None or part.exists():
        old = Query(**saved.query | {"quantities": tuple(saved.query["quantities"])}) if saved else None
        what = f"for other choices ({old.describe()})" if old else "that cannot be continued"
        warning = escape(f"{part} holds a download {what}: starting afresh.")
        err_console.print(f"[yellow]![/yellow] {warning}", highlight=False)
    part.unlink(missing_ok=True)
    state.unlink(missing_ok=True)
    return Checkpoint(wanted)


def pages(http: httpx.Client, query: Query, quantity: str | None, after: int | None, limit: int,
          on_meta: Callable[[dict[str, Any]], None]) -> Iterator[dict[str, Any]]:  # fmt: skip
    """One keyset stream: the rows of every page, following the hub's `after` token until the last page."""
    while True:
        params = query.params(quantity) | {"limit": str(limit)} | ({"after": str(after)} if after is not None else {})
        response = http.get(OPEN_READINGS, params=params)
        if response.is_error:
            abort(escape(explain(response)))
        body = response.json()
        on_meta(body["meta"])
        yield from body["readings"]
        if body["next"] is None or not body["readings"]:
            return
        after = body["readings"][-1]["id"]


def csv_cells(row: dict[str, Any]) -> list[Any]:
    """A reading as the hub's own CSV writes it: COLUMNS in order, missing values as empty cells."""
    return ["" if row[name] is None else row[name] for name in COLUMNS]


def fetch(http: httpx.Client, output: Path, query: Query, checkpoint: Checkpoint, limit: int,
          meta: dict[str, Any], on_page: Callable[[int], None]) -> None:  # fmt: skip
    """Append every remaining row to the .part file, recording a checkpoint after each complete page."""
    part, state = sidecars(output)
    streams = [pages(http, query, q, checkpoint.after, limit, meta.update) for q in query.quantities or (None,)]
    rows = heapq.merge(*streams, key=lambda row: row["id"]) if len(streams) > 1 else streams[0]
    page = list(islice(rows, limit))  # before the file is touched: an unreachable hub leaves nothing behind
    with part.open("a", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        if checkpoint.size == 0:
            writer.writerow(COLUMNS)
        while page:
            writer.writerows(csv_cells(row) for row in page)
            file.flush()
            os.fsync(file.fileno())
            checkpoint.rows += len(page)
            checkpoint.size, checkpoint.after = os.fstat(file.fileno()).st_size, page[-1]["id"]
            save_checkpoint(state, checkpoint)
            on_page(checkpoint.rows)
            page = list(islice(rows, limit))


def licence_text(meta: dict[str, Any], query: Query, rows: int, output: Path) -> str:
    return (
        f"Open data from {meta['source']} ({query.hub}), downloaded {meta['generated_at']}.\n"
        f"Licence: {meta['licence']} ({meta['licence_url']})\n"
        f"Attribution: {meta['attribution']}\n"
        f"Readings: {rows} in {output.name}\n"
        f"Asked for: {query.describe()}\n"
    )


def write_parquet(part: Path, output: Path, meta: dict[str, Any], query: Query) -> None:
    """The finished CSV as Parquet, typed, read a block at a time; licence and attribution in its metadata."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv
    from pyarrow import parquet as pq

    types = {name: pa.string() for name in COLUMNS} | {
        "id": pa.int64(), "value": pa.float64(), "agreement_id": pa.int64(),
        "measured_at": pa.timestamp("us", tz="UTC"),
    }  # fmt: skip
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    metadata = {f"sensing.{key}": str(value) for key, value in meta.items()} | {"sensing.query": query.describe()}
    schema = pa.schema([(name, types[name]) for name in COLUMNS], metadata=metadata)
    temporary = output.with_name(output.name + ".new")
    reader = pa_csv.open_csv(part, convert_options=options)
    with pq.ParquetWriter(temporary, schema) as writer:
        for batch in reader:
            writer.write_batch(batch.replace_schema_metadata(metadata))
    os.replace(temporary, output)
    part.unlink()


def finish(output: Path, fmt: Format, meta: dict[str, Any], query: Query, rows: int) -> None:
    part, state = sidecars(output)
    if fmt == Format.parquet:
        write_parquet(part, output, meta, query)
    else:
        os.replace(part, output)
    output.with_name(output.name + ".licence.txt").write_text(licence_text(meta, query, rows, output))
    state.unlink(missing_ok=True)


def interrupted(query: Query, checkpoint: Checkpoint) -> str:
    return (f"The download from {query.hub} was interrupted after {checkpoint.rows} readings: "
            "run the same command again to continue.")  # fmt: skip


def pyarrow_installed() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


@app.command()
def download(
    output: Path = typer.Option(..., "--output", "-o", help="The file to write: .csv, or .parquet for Parquet."),
    area: str = typer.Option(None, help="Only this area."),
    quantity: list[str] = typer.Option(None, help="Only this quantity, e.g. pm2_5 (repeat for more)."),
    device: str = typer.Option(None, help="Only this device (its public id)."),
    since: str = typer.Option(None, help="Measured at or after this (ISO 8601; UTC if no zone)."),
    until: str = typer.Option(None, help="Measured before this (ISO 8601; UTC if no zone)."),
    format: Format = typer.Option(None, "--format", help="csv or parquet (default: by the output's suffix)."),
    page_size: int = typer.Option(5000, min=1, max=10000, help="Readings per request to the hub."),
    hub: str = typer.Option(DEFAULT_HUB, "--hub", envvar="SENSING_HUB_URL", help="The hub's address."),
) -> None:
    """Download open readings as CSV or Parquet, with the licence they are published under.

    An interrupted download continues where it stopped when the same command is run again.
    """
    fmt = chosen_format(output, format)
    if fmt == Format.parquet and not pyarrow_installed():
        abort(escape("Parquet needs pyarrow, which is not installed: pip install 'citizen-sensing[parquet]', "
                     "or download CSV."))
    start, end = moment("--since", since), moment("--until", until)
    if start is not None and end is not None and start >= end:
        abort(escape(f"The time range is empty: --since {start} is not before --until {end}."))
    query = Query(hub.rstrip("/"), area, tuple(sorted(set(quantity or ()))), device, start, end)
    checkpoint = resume_point(output, query)
    if checkpoint.rows:
        console.out(f"Continuing after {checkpoint.rows} readings already downloaded.", highlight=False)
    meta: dict[str, Any] = {}
    columns = (SpinnerColumn(), TextColumn("{task.completed} readings so far"), TimeElapsedColumn())
    bar = Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal)
    try:
        with client(query.hub, timeout=60) as http, bar:
            task = bar.add_task("download", total=None, completed=checkpoint.rows)
            fetch(http, output, query, checkpoint, page_size, meta, lambda rows: bar.update(task, completed=rows))
    except httpx.ConnectError:
        if not meta:  # not one answer in this run
            abort(escape(f"The hub at {query.hub} is not reachable: is it running, and is the address right?"))
        abort(escape(interrupted(query, checkpoint)))
    except httpx.TransportError:
        abort(escape(interrupted(query, checkpoint)))
    finish(output, fmt, meta, query, checkpoint.rows)
    console.out(f"✓ {checkpoint.rows} readings written to {output} (licence: {meta['licence']}).", highlight=False)
