"""Filtered reads of merged.csv: the rows of the committed prefix that match a RowQuery, as CSV or
Parquet, computed by polars' streaming engine into a file (memory stays bounded whatever the size of
merged.csv), which the route then streams out.

Only committed rows are read: the scan stops after the committed row count (state.rows_merged), so
bytes being appended meanwhile (or an uncommitted tail) are never part of an answer.

The files are pinned when the query is planned (pin_sources: a hard link to each in the answer's
own folder), so a segment that compaction or retention removes while the query reads it stays
readable to it: the answer is the committed state it was planned on, as a download's open files are.

A query whose reader has gone stops within one chunk of the read: the plan checks the
answer's `abandoned` flag before each chunk (polars' own cancel does not stop a streaming sink)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import polars as pl

from contract.compacted import PARQUET_SCHEMA, as_text
from contract.csv import ROW_COLUMNS, ROW_DTYPES
from services.merger.chunked_csv import scan_committed
from services.merger.errors import InvalidQueryError

log = logging.getLogger(__name__)

Format = Literal["csv", "parquet"]
CHUNK_SIZE: Final = 256 * 1024
#: eventTime as written by the Spark job, in chrono's syntax (as the batch checks parse it).
EVENT_TIME_PARSE: Final = "%Y-%m-%dT%H:%M:%S%.fZ"
_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
#: Parquet columns: integers as integers, eventTime a UTC timestamp (microseconds).
TYPED_SCHEMA: Final = pl.Schema({c: _TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS})
#: CSV answers keep every field exactly as merged (no number or time reformatting).
TEXT_SCHEMA: Final = pl.Schema(dict.fromkeys(ROW_COLUMNS, pl.String))
EVENT_TIME_TYPE: Final = pl.Datetime("us", "UTC")


def might_match(q: RowQuery, event_time_us: tuple[int, int] | None) -> bool:
    """Whether rows whose eventTimes lie within `event_time_us` (a segment's bounds; None: unknown)
    may match q's time filter: a segment that cannot is skipped whole."""
    if event_time_us is None:
        return True
    low, high = (datetime.fromtimestamp(t / 1e6, UTC) for t in event_time_us)
    return not ((q.since is not None and high < q.since) or (q.until is not None and low >= q.until))


@dataclass(frozen=True)
class RowQuery:
    """Which rows and columns: `since` <= eventTime < `until`; each list matches any of its values
    (an empty string in `statuses` matches a row without a status); `columns` empty = all."""

    since: datetime | None = None
    until: datetime | None = None
    device_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def is_unfiltered(self) -> bool:
        return self == RowQuery()

    def key(self) -> str:
        """A short stable digest of the query (part of the answer's ETag)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


def _utc(field: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidQueryError(field, f"{value.isoformat()} is out of range in UTC") from None


def _values(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values or ()))


def build_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    device_ids: Iterable[str] | None = None,
    customer_ids: Iterable[str] | None = None,
    statuses: Iterable[str] | None = None,
    columns: Iterable[str] | None = None,
    limit: int | None = None,
) -> RowQuery:
    """A checked RowQuery; raises InvalidQueryError naming the field. A naive time is taken as UTC;
    `columns` may repeat the parameter or list names separated by commas."""
    since, until = _utc("since", since), _utc("until", until)  # since after until: an empty range
    cols = tuple(dict.fromkeys(c.strip() for value in columns or () for c in value.split(",") if c.strip()))
    unknown = [c for c in cols if c not in ROW_COLUMNS]
    if unknown:
        raise InvalidQueryError("columns", f"unknown column(s) {unknown}; known: {list(ROW_COLUMNS)}")
    if limit is not None and limit < 0:
        raise InvalidQueryError("limit", "must be >= 0")
    return RowQuery(
        since=since,
        until=until,
        device_ids=_values(device_ids),
        customer_ids=_values(customer_ids),
        statuses=_values(statuses),
        columns=cols,
        limit=limit,
    )


def _any_of(column: str, values: tuple[str, ...]) -> pl.Expr:
    """`column` is one of `values`; "" stands for an empty field (null)."""
    present = [v for v in values if v]
    expr = pl.col(column).is_in(present)
    if "" in values:
        expr = expr | pl.col(column).is_null()
    return expr


def predicate(q: RowQuery, event_time: pl.Expr) -> pl.Expr | None:
    """The row filter of `q` (None: every row); `event_time` is eventTime as a UTC datetime."""
    parts: list[pl.Expr] = []
    if q.since is not None:
        parts.append(event_time >= pl.lit(q.since, dtype=EVENT_TIME_TYPE))
    if q.until is not None:
        parts.append(event_time < pl.lit(q.until, dtype=EVENT_TIME_TYPE))
    for column, values in (("deviceId", q.device_ids), ("customerId", q.customer_ids), ("status", q.statuses)):
        if values:
            parts.append(_any_of(column, values))
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def parsed_event_time(column: str = "eventTime") -> pl.Expr:
    return pl.col(column).str.to_datetime(EVENT_TIME_PARSE, time_unit="us", time_zone="UTC", strict=False)


class Abandoned(Exception):
    """The reader of the answer has gone: the query stops."""


#: A file to read and its committed data rows (merged.csv, or each segment: contract.segments).
Source = tuple[Path, int]


def plan(sources: list[Source], q: RowQuery, fmt: Format, check: Callable[[], None] | None = None) -> pl.LazyFrame:
    """The lazy query over the first committed data rows of each source, one after the other.
    `check` runs between chunks of the scan; it raises (Abandoned) to stop the query."""
    scans = [_scan(path, rows, q, fmt, check) for path, rows in sources if rows > 0]
    if not scans:
        lf = pl.LazyFrame(schema=PARQUET_SCHEMA if fmt == "parquet" else TEXT_SCHEMA)
    else:
        lf = scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")
    if q.columns:
        lf = lf.select(q.columns)
    if q.limit is not None:
        lf = lf.head(q.limit)
    return lf


def checked_batches(lf: pl.LazyFrame, check: Callable[[], None] | None) -> pl.LazyFrame:
    """`lf` (of PARQUET_SCHEMA) with `check` run before each batch the streaming engine hands on:
    it raises to stop the query or sink (polars' own cancel does not stop a streaming sink)."""
    if check is None:
        return lf

    def checked(batch: pl.DataFrame) -> pl.DataFrame:
        check()
        return batch

    return lf.map_batches(checked, streamable=True, schema=PARQUET_SCHEMA)


def _scan(path: Path, rows: int, q: RowQuery, fmt: Format, check: Callable[[], None] | None) -> pl.LazyFrame:
    """One source's matching rows, typed for a Parquet answer, as text for a CSV one. A compacted
    segment's Parquet copy (contract.compacted) is filtered on its typed columns (the filter reaches
    the Parquet reader: row groups outside it are skipped)."""
    if path.suffix == ".parquet":
        lf = checked_batches(pl.scan_parquet(path).head(rows), check)
        cond = predicate(q, pl.col("eventTime"))
        lf = lf if cond is None else lf.filter(cond)
        return lf if fmt == "parquet" else as_text(lf)
    # Read as text, always (typed parsing happens after the committed rows are cut), in bounded
    # chunks rather than scan_csv's memory map, whose pages would stay resident (services.merger.chunked_csv).
    lf = scan_committed(path, rows, TEXT_SCHEMA, check)
    if fmt == "parquet":
        lf = lf.cast({c: t for c, t in TYPED_SCHEMA.items() if t != pl.String}).with_columns(parsed_event_time())
        event_time = pl.col("eventTime")
    else:
        event_time = parsed_event_time()
    cond = predicate(q, event_time)
    return lf if cond is None else lf.filter(cond)


def run_query(
    sources: list[Source], q: RowQuery, fmt: Format, out: Path, check: Callable[[], None] | None = None
) -> None:
    """Write the answer of `q` to `out` with the streaming engine (bounded memory)."""
    lf = plan(sources, q, fmt, check)
    if fmt == "parquet":
        lf.sink_parquet(out, compression="zstd", engine="streaming")
    else:
        lf.sink_csv(out, include_header=True, engine="streaming")


def pin_sources(sources: list[Source], into: Path) -> list[Source]:
    """The same sources as hard links in the new folder `into` (in the merger's folder: the same
    file system), made now: the query reads the links, so the files it was planned on stay whole
    and readable until it is done, whatever removes their names meanwhile (polars opens a source by
    its path, so an open file would not do; the space of a removed file is freed when the query is
    done). Raises FileNotFoundError when one is already gone (the caller plans again on the state
    that removed it), or another OSError when a link cannot be made (the caller reads in place);
    `into` is then removed."""
    pinned: list[Source] = []
    try:
        into.mkdir()
        for i, (path, rows) in enumerate(sources):
            link = into / f"{i:06d}-{path.name}"
            link.hardlink_to(path)
            pinned.append((link, rows))
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise
    return pinned


def tmp_dir(merger_dir: Path) -> Path:
    return merger_dir / "query-tmp"


def reset_tmp_dir(path: Path) -> None:
    """Remove answers left behind by a crash, then make sure the folder exists."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


class AnswerFile:
    """The answer being written to `path` by a worker thread while the response streams it: the
    reader follows the file as it grows (the streaming engine writes batch after batch, so the first
    bytes leave long before a large answer is complete) and stops at its end once the writer is done.
    A reader that leaves calls abandon(): the query stops at its next batch. The file is removed by
    whichever of the two finishes last; the folder of the query's pinned sources (`pins`, see
    pin_sources) by the writer once it is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pins = path.with_name(path.name + ".src")
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.abandoned = threading.Event()

    def _check(self) -> None:
        if self.abandoned.is_set():
            raise Abandoned(str(self.path))

    def write(self, sources: list[Source], q: RowQuery, fmt: Format) -> None:
        """Run the query (in the worker thread); never raises: the reader reports the error."""
        t0 = time.perf_counter()
        try:
            self._check()
            run_query(sources, q, fmt, self.path, self._check)
        except BaseException as e:
            self.error = e
            if self.abandoned.is_set():
                log.info("query stopped: its reader has gone", extra={"format": fmt, "query": repr(q)})
            else:
                log.error("query failed", extra={"format": fmt, "query": repr(q), "error": repr(e)})
        else:
            log.info(
                "query answered",
                extra={"format": fmt, "query": repr(q), "ms": round((time.perf_counter() - t0) * 1000, 1)},
            )
        finally:
            shutil.rmtree(self.pins, ignore_errors=True)
            self.done.set()
            if self.abandoned.is_set():
                self.path.unlink(missing_ok=True)

    def started(self) -> bool | None:
        """True once the answer has its first bytes (or is complete), False when the writer failed
        without writing anything, None while neither."""
        finished = self.done.is_set()
        try:
            if self.path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        if finished:
            return self.error is None
        return None

    def abandon(self) -> None:
        """The reader is gone (or done): stop the query, remove the file once nobody uses it."""
        self.abandoned.set()
        if self.done.is_set():
            self.path.unlink(missing_ok=True)
