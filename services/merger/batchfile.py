"""Reading and checking one batch file against the row contract (pure: bytes in, verdict out).

Two formats: keyed batch files (header BATCH_ROW_HEADER: each row starts with the Kafka partition and
offset of its record) and legacy ones (ROW_HEADER only). `select_rows` turns a keyed batch's rows
into merged.csv's ten columns, dropping the rows of records already merged, byte for byte otherwise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from contract.csv import BATCH_ROW_COLUMNS, KAFKA_COLUMNS, ROW_COLUMNS, ROW_DTYPES, ROW_HEADER
from contract.csv import BATCH_ROW_HEADER as _BATCH_ROW_HEADER
from services.merger.errors import InvalidBatchError

_POLARS_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
SCHEMA: Final = pl.Schema({c: _POLARS_TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS})
KEYED_SCHEMA: Final = pl.Schema({"kafkaPartition": pl.Int32, "kafkaOffset": pl.Int64, **SCHEMA})
#: Columns whose values must parse as something other than a string, or must be present.
_CHECKED: Final = [i for i, c in enumerate(ROW_COLUMNS) if ROW_DTYPES[c] != "str" or c in ("eventId", "eventTime")]
_KEYED_CHECKED: Final = [0, 1, *(i + len(KAFKA_COLUMNS) for i in _CHECKED)]
KEYED_HEADER: Final = _BATCH_ROW_HEADER.encode()
assert BATCH_ROW_COLUMNS[len(KAFKA_COLUMNS) :] == ROW_COLUMNS
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
    #: The data lines, each ending in "\n", without the header, as merged.csv holds them: for a keyed
    #: batch with the two Kafka fields cut off each row (done here, in the reading thread), every
    #: other byte as written (see select_rows).
    data: bytes
    rows: int
    #: eventTime of every row, epoch microseconds (for freshness).
    event_time_us: pl.Series
    #: Kafka partition and offset of every row's record (None for a legacy batch).
    kafka_partition: pl.Series | None = None
    kafka_offset: pl.Series | None = None
    #: The lowest and highest offset of the rows per Kafka partition (empty for a legacy batch):
    #: what the merger compares with its next offsets (computed here, in the reading thread).
    partition_bounds: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def keyed(self) -> bool:
        return self.kafka_offset is not None


def parse_batch(raw: bytes) -> ParsedBatch | None:
    """The batch's rows, None for an empty batch (0 bytes or the header only).
    Raises InvalidBatchError naming what breaks the contract."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw:
        return None
    nl = raw.find(b"\n")
    header, data = (raw, b"") if nl < 0 else (raw[:nl], raw[nl + 1 :])
    if header not in (HEADER, KEYED_HEADER):
        shown = header[:300].decode("utf-8", "replace")
        raise InvalidBatchError(f"header is {shown!r}, expected {_BATCH_ROW_HEADER!r} (or legacy {ROW_HEADER!r})")
    keyed = header == KEYED_HEADER
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
        if keyed:
            df = pl.read_csv(data, has_header=False, schema=KEYED_SCHEMA, columns=_KEYED_CHECKED)
        else:
            df = pl.read_csv(data, has_header=False, schema=SCHEMA, columns=_CHECKED)
    except pl.exceptions.PolarsError as e:
        raise InvalidBatchError(f"rows do not parse: {first_line(str(e))}") from e
    _check_field_counts(data, df.height, len(KEYED_SCHEMA) if keyed else _N_FIELDS)

    for col in (*KAFKA_COLUMNS, *REQUIRED) if keyed else REQUIRED:
        # (a blank line reads as a row of nulls, so it is caught here too)
        if n := df.get_column(col).null_count():
            raise InvalidBatchError(f"{n} row(s) with an empty {col} (or a blank line)")
    times = df.get_column("eventTime").str.to_datetime(EVENT_TIME_PARSE, strict=False, time_unit="us")
    if times.null_count():
        bad = df.get_column("eventTime").filter(times.is_null()).head(1).item()
        raise InvalidBatchError(f"eventTime {bad!r} is not an ISO-8601 UTC timestamp")
    if not keyed:
        return ParsedBatch(data=data, rows=df.height, event_time_us=times.cast(pl.Int64))
    partitions, offsets = df.get_column("kafkaPartition"), df.get_column("kafkaOffset")
    return ParsedBatch(
        data=_cut_kafka_prefixes(data) if b'"' not in data else _cut_kafka_fields(data, df.height),
        rows=df.height,
        event_time_us=times.cast(pl.Int64),
        kafka_partition=partitions,
        kafka_offset=offsets,
        partition_bounds=partition_bounds(partitions, offsets),
    )


def partition_bounds(partitions: pl.Series, offsets: pl.Series) -> dict[int, tuple[int, int]]:
    """(lowest, highest) offset per partition (a few partitions, thousands of rows: one filter each,
    cheaper than a group_by)."""
    unique = partitions.unique().to_list()
    if len(unique) == 1:
        return {int(unique[0]): _low_high(offsets)}
    return {int(p): _low_high(offsets.filter(partitions == p)) for p in unique}


def _low_high(offsets: pl.Series) -> tuple[int, int]:
    low, high = offsets.min(), offsets.max()
    assert isinstance(low, int) and isinstance(high, int)  # (no nulls: parse_batch checked)
    return low, high


def split_records(data: bytes) -> list[bytes]:
    """The CSV records of `data` (each ending in "\n"): a newline inside a quoted field (an odd
    number of quotes so far) belongs to the record, so CR and LF in fields are kept as they are."""
    lines = data.split(b"\n")[:-1]
    if b'"' not in data:
        return [line + b"\n" for line in lines]
    records: list[bytes] = []
    pending: list[bytes] = []
    quotes = 0
    for line in lines:
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            records.append(b"\n".join(pending) + b"\n")
            pending, quotes = [], 0
    if pending:
        raise InvalidBatchError("a quoted field is not closed at the end of the file")
    return records


def select_rows(parsed: ParsedBatch, keep: pl.Series | None) -> bytes:
    """A keyed batch's rows to append: only those where `keep` is true (all when None), each
    byte for byte as parsed.data holds it."""
    if keep is None or keep.all():
        return parsed.data
    records = split_records(parsed.data)
    mask = keep.to_list()
    if len(records) != len(mask):
        raise InvalidBatchError(f"{len(records)} records but {len(mask)} rows parsed")
    return b"".join(r for r, k in zip(records, mask, strict=True) if k)


def _cut_kafka_fields(data: bytes, rows: int) -> bytes:
    """`data` without the two Kafka fields at the start of each record (quote-aware)."""
    records = split_records(data)
    if len(records) != rows:
        raise InvalidBatchError(f"{len(records)} records but {rows} rows parsed")
    return b"".join(r[r.index(b",", r.index(b",") + 1) + 1 :] for r in records)


def _cut_kafka_prefixes(data: bytes) -> bytes:
    """`data` without the two Kafka fields at the start of each line, for rows without quotes (one
    row per line; parse_batch has checked every row starts with two integers). In polars: split
    into lines, keep what follows the second comma, join; several times faster than a multiline
    regex substitution, and the same bytes (a split yields one item at least: explode never meets an empty list)."""
    lines = pl.Series([data.decode("utf-8")]).str.split("\n").explode(empty_as_null=True)
    kept = lines.head(len(lines) - 1).str.splitn(",", 3).struct.field("field_2")  # (data ends in "\n")
    if kept.null_count():
        raise InvalidBatchError(f"{kept.null_count()} row(s) without the two Kafka fields")
    return (kept.str.join("\n").item() + "\n").encode("utf-8")


def _check_field_counts(data: bytes, rows: int, n_fields: int = _N_FIELDS) -> None:
    """polars fills a short row with nulls; the contract wants exactly n_fields fields on every row."""
    if b'"' not in data:
        # No quoting: one row per line and exactly n_fields - 1 commas per row (both counted in C).
        # (a blank line fails the null check: polars read exactly one row per line)
        if data.count(b",") == rows * (n_fields - 1):
            return
        for i, line in enumerate(data.split(b"\n")[:-1], start=2):
            if not line:
                raise InvalidBatchError(f"line {i} is blank")
            n = line.count(b",") + 1
            if n != n_fields:
                raise InvalidBatchError(f"line {i} has {n} fields, expected {n_fields}")
        lines = data.count(b"\n")
        raise InvalidBatchError(f"{lines} lines but {rows} rows parsed")
    # csv's default field limit (128 KiB) is below Kafka's message size: a valid 200,000-char field
    # must not make the check fail (the limit is process-wide; raising it is harmless).
    if csv.field_size_limit() < FIELD_SIZE_LIMIT:
        csv.field_size_limit(FIELD_SIZE_LIMIT)
    n_rows = 0
    for n_rows, fields in enumerate(csv.reader(io.StringIO(data.decode("utf-8"), newline="")), start=1):
        if len(fields) != n_fields:
            raise InvalidBatchError(f"row {n_rows} has {len(fields)} fields, expected {n_fields}")
    if n_rows != rows:
        raise InvalidBatchError(f"{n_rows} rows read but {rows} parsed")


def first_line(msg: str) -> str:
    return msg.strip().splitlines()[0][:300] if msg.strip() else "unknown error"
