"""Reading and checking one batch file against the row contract (pure: bytes in, verdict out)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Final

import polars as pl

from contract.csv import ROW_COLUMNS, ROW_DTYPES, ROW_HEADER
from services.merger.errors import InvalidBatchError

_POLARS_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
SCHEMA: Final = pl.Schema({c: _POLARS_TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS})
#: Columns whose values must parse as something other than a string, or must be present.
_CHECKED: Final = [i for i, c in enumerate(ROW_COLUMNS) if ROW_DTYPES[c] != "str" or c in ("eventId", "eventTime")]
#: A row is identified by (eventOffset, deviceIndex) and dated by eventTime: these are never empty.
REQUIRED: Final = ("eventId", "eventOffset", "eventTime", "deviceIndex")
#: eventTime as written by the Spark job (ISO-8601 UTC, fraction of a second), in chrono's syntax.
EVENT_TIME_PARSE: Final = "%Y-%m-%dT%H:%M:%S%.fZ"
HEADER: Final = ROW_HEADER.encode()
_BOM: Final = b"\xef\xbb\xbf"
_N_FIELDS: Final = len(ROW_COLUMNS)
#: No field is too long to check: above any Kafka message size (max.message.bytes caps at 2 GiB).
FIELD_SIZE_LIMIT: Final = 2**31 - 1


@dataclass(frozen=True)
class ParsedBatch:
    #: The data lines, each ending in "\n", without the header: exactly what is appended to merged.csv.
    data: bytes
    rows: int
    #: eventTime of every row, epoch microseconds (for freshness).
    event_time_us: pl.Series


def parse_batch(raw: bytes) -> ParsedBatch | None:
    """The batch's rows, None for an empty batch (0 bytes or the header only).
    Raises InvalidBatchError naming what breaks the contract."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw:
        return None
    nl = raw.find(b"\n")
    header, data = (raw, b"") if nl < 0 else (raw[:nl], raw[nl + 1 :])
    if header != HEADER:
        shown = header[:300].decode("utf-8", "replace")
        raise InvalidBatchError(f"header is {shown!r}, expected {ROW_HEADER!r}")
    if not data:
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    if not data.isascii():  # (isascii is a fast scan; most batches are ASCII)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidBatchError(f"not UTF-8 at byte {e.start} of the rows") from e

    try:
        df = pl.read_csv(data, has_header=False, schema=SCHEMA, columns=_CHECKED)
    except pl.exceptions.PolarsError as e:
        raise InvalidBatchError(f"rows do not parse: {first_line(str(e))}") from e
    _check_field_counts(data, df.height)

    for col in REQUIRED:
        # (a blank line reads as a row of nulls, so it is caught here too)
        if n := df.get_column(col).null_count():
            raise InvalidBatchError(f"{n} row(s) with an empty {col} (or a blank line)")
    times = df.get_column("eventTime").str.to_datetime(EVENT_TIME_PARSE, strict=False, time_unit="us")
    if times.null_count():
        bad = df.get_column("eventTime").filter(times.is_null()).head(1).item()
        raise InvalidBatchError(f"eventTime {bad!r} is not an ISO-8601 UTC timestamp")
    return ParsedBatch(data=data, rows=df.height, event_time_us=times.cast(pl.Int64))


def _check_field_counts(data: bytes, rows: int) -> None:
    """polars fills a short row with nulls; the contract wants exactly 10 fields on every row."""
    if b'"' not in data:
        # No quoting: one row per line and exactly 9 commas per row (both counted in C).
        # (a blank line fails the null check: polars read exactly one row per line)
        if data.count(b",") == rows * (_N_FIELDS - 1):
            return
        for i, line in enumerate(data.split(b"\n")[:-1], start=2):
            if not line:
                raise InvalidBatchError(f"line {i} is blank")
            n = line.count(b",") + 1
            if n != _N_FIELDS:
                raise InvalidBatchError(f"line {i} has {n} fields, expected {_N_FIELDS}")
        lines = data.count(b"\n")
        raise InvalidBatchError(f"{lines} lines but {rows} rows parsed")
    # csv's default field limit (128 KiB) is below Kafka's message size: a valid 200,000-char field
    # must not make the check fail (the limit is process-wide; raising it is harmless).
    if csv.field_size_limit() < FIELD_SIZE_LIMIT:
        csv.field_size_limit(FIELD_SIZE_LIMIT)
    n_rows = 0
    for n_rows, fields in enumerate(csv.reader(io.StringIO(data.decode("utf-8"), newline="")), start=1):
        if len(fields) != _N_FIELDS:
            raise InvalidBatchError(f"row {n_rows} has {len(fields)} fields, expected {_N_FIELDS}")
    if n_rows != rows:
        raise InvalidBatchError(f"{n_rows} rows read but {rows} parsed")


def first_line(msg: str) -> str:
    return msg.strip().splitlines()[0][:300] if msg.strip() else "unknown error"
