"""A compacted segment (contract.segments): the Parquet copy of a closed segment's rows, with typed
columns (the types of the merger's merged.parquet answers: eventOffset int64, deviceIndex and
temperature int32, eventTime a UTC timestamp in microseconds, the others strings), and the rule that
renders those rows back to merged.csv's data lines. The merger compacts a segment only when the
rendering gives back its CSV bytes exactly, so every reader (GET /merged.csv, verify, the device
figures) sees the same rows, byte for byte, whichever file it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from contract.csv import ROW_COLUMNS, ROW_DTYPES

_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
EVENT_TIME_TYPE: Final = pl.Datetime("us", "UTC")
#: The Parquet copy's columns, in merged.csv's order.
PARQUET_SCHEMA: Final = pl.Schema(
    {c: EVENT_TIME_TYPE if c == "eventTime" else _TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS}
)
#: merged.csv's columns as read for comparison: every field as text.
TEXT_SCHEMA: Final = pl.Schema(dict.fromkeys(ROW_COLUMNS, pl.String))
#: eventTime as parsed (any fraction of a second) and as written back (always six digits, as the job does).
EVENT_TIME_PARSE: Final = "%Y-%m-%dT%H:%M:%S%.fZ"
EVENT_TIME_TEXT: Final = "%Y-%m-%dT%H:%M:%S%.6fZ"


def typed(lf: pl.LazyFrame) -> pl.LazyFrame:
    """merged.csv's text columns as the Parquet copy's types (strict: a value that does not parse fails)."""
    return lf.with_columns(
        pl.col("eventTime").str.to_datetime(EVENT_TIME_PARSE, time_unit="us", time_zone="UTC", strict=True),
        *(pl.col(c).cast(t, strict=True) for c, t in PARQUET_SCHEMA.items() if t not in (pl.String, EVENT_TIME_TYPE)),
    )


def as_text(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The Parquet copy's typed columns as merged.csv's text (nulls stay null: an empty field)."""
    return lf.with_columns(
        pl.col("eventTime").dt.strftime(EVENT_TIME_TEXT),
        *(pl.col(c).cast(pl.String) for c, t in PARQUET_SCHEMA.items() if t not in (pl.String, EVENT_TIME_TYPE)),
    )


def render_csv(rows: pl.DataFrame) -> bytes:
    """Typed rows as merged.csv's data lines: RFC 4180 quoting where needed ("" inside quotes), an empty
    string as "", null as an empty field, "\\n" line ends (the Spark job's CSV writer options)."""
    if rows.height == 0:
        return b""
    text = as_text(rows.lazy()).collect()
    return text.write_csv(include_header=False, quote_style="necessary", null_value="", line_terminator="\n").encode()


def scan_text(path: Path | str) -> pl.LazyFrame:
    """A Parquet copy's rows as merged.csv's text columns (what a CSV scan of the segment gives)."""
    return as_text(pl.scan_parquet(path))
