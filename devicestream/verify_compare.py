"""verify's comparison (devicestream.verify): the expected rows of a topic scan against the merged rows
and the rejects, in memory bounded whatever the sizes.

Every per-row check keys on (eventOffset, deviceIndex), so the rows are split by a hash of the
eventOffset text into buckets, each small enough to compare in memory (~BUCKET_BYTES of input):
equal keys always land in one bucket, and a merged row whose eventOffset is not a number lands in
some bucket where nothing matches it (it is unexpected, as it would be in one pass). Each side is
read once, CHUNK_BYTES at a time (a polars scan maps the whole file, whose pages then count in the
process's memory), written to its buckets (lz4 Arrow IPC files in a temporary folder), and the
buckets are compared one after the other and their counts added up. Small inputs are one bucket:
read straight into memory, no files. Every row of a record carries the record's eventOffset, so a
record's rows are in one bucket too and the per-record counts (records unaccounted) add up as well.

What stays whole: the rejects (one row per rejected record, read into memory by
devicestream.merged_files), the invalid records compared with them (as many as the rejects when the
pipeline agrees with verify), and the unaccounted records' (partition, offset) pairs, which go to a
file per bucket and are read back a window of offsets at a time to name the first runs."""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from contract.compacted import TEXT_SCHEMA, scan_text
from contract.csv import ROW_COLUMNS
from contract.verify_report import OffsetRange, VerifyReport
from devicestream.merged_files import (
    MergedFiles,
    _rejects,
    merged_files,
    merged_rejects_of,
    split_retired,
)
from devicestream.verify_chunks import is_chunk, read_text, text_size

if TYPE_CHECKING:
    from devicestream.verify import TopicScan

KEY = ["eventOffset", "deviceIndex"]
RECORD = ["partition", "offset"]
#: Input per bucket (expected CSV bytes plus merged CSV bytes): ~0.6M rows of each side, compared in
#: ~0.8 GB (measured: scripts/verify_memory.py; 256 MB took ~1.4 GB, 64 MB no less than 128 MB).
BUCKET_BYTES = 128 * 1024 * 1024
#: A compacted segment's Parquet copy counts as this many CSV bytes per row.
CSV_BYTES_PER_ROW = 110
#: How much of a CSV file is read at a time while splitting, and how many rows of a Parquet copy.
CHUNK_BYTES = 64 * 1024 * 1024
PARQUET_ROWS = 500_000
#: The expected rows' CSV (devicestream.verify.scan_partition): every column as text.
EXPECTED_STRINGS = [*ROW_COLUMNS, "partition", "offset"]
EXPECTED_SCHEMA = pl.Schema(dict.fromkeys(EXPECTED_STRINGS, pl.String))
#: How many offsets of one partition are read back at a time to name the unaccounted runs.
RANGE_WINDOW = 1 << 22
#: The problems with examples in the report, in the order they are listed.
EXAMPLE_KINDS = ("rows_missing", "rows_duplicated", "rows_altered", "rows_unexpected", "offsets_reused")


def _in_scanned_range(scan: TopicScan) -> pl.Expr:
    """Whether a (partition, offset) lies in what the scan read: at or above the partition's log
    start offset (below it retention deleted the record) and below the end offset it stopped at."""
    parts = sorted(scan.end_offsets)
    if not parts:
        return pl.lit(True)
    start = pl.col("partition").replace_strict(parts, [scan.start_offsets.get(p, 0) for p in parts], default=None)
    end = pl.col("partition").replace_strict(parts, [scan.end_offsets[p] for p in parts], default=None)
    return (pl.col("offset") >= start) & (pl.col("offset") < end)


def _split_unexplained(unexplained: pl.LazyFrame, floor: int | None) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Merged keys no scanned record explains -> (unexpected, before retention)."""
    if floor is None:
        return unexplained, unexplained.head(0)
    below = pl.col("eventOffset").cast(pl.Int64, strict=False) < floor
    return unexplained.filter(~below.fill_null(False)), unexplained.filter(below.fill_null(False))


@dataclass
class _Tally:
    """The per-row counts of the buckets compared so far, a few examples of each, and where the
    unaccounted records went."""

    examples: int
    counts: dict[str, int] = field(default_factory=dict)
    found: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in EXAMPLE_KINDS})
    unaccounted: list[pl.LazyFrame] = field(default_factory=list)

    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def example(self, name: str, rows: pl.DataFrame) -> None:
        if (need := self.examples - len(self.found[name])) > 0:
            self.found[name] += rows.head(need).to_dicts()


def _compare_bucket(
    tally: _Tally,
    expected: pl.DataFrame,
    merged: pl.DataFrame,
    files: MergedFiles,
    rejects: pl.DataFrame,
    scan: TopicScan,
) -> pl.DataFrame:
    """Add one bucket's counts to `tally`; returns its unaccounted records (partition, offset)."""
    counts = merged.group_by(KEY).agg(pl.len().alias("n"))
    dup = counts.filter(pl.col("n") > 1)
    retired, missing = (
        lf.collect() for lf in split_retired(expected.lazy().join(counts.lazy(), on=KEY, how="anti"), files, KEY)
    )
    unexpected, before_retention = (
        lf.collect()
        for lf in _split_unexplained(
            counts.lazy().join(expected.lazy().select(KEY), on=KEY, how="anti"), scan.retention_floor()
        )
    )
    joined = expected.join(merged.unique(KEY, keep="first", maintain_order=True), on=KEY, how="inner", suffix="_m")
    altered = joined.filter(pl.any_horizontal([pl.col(c) != pl.col(f"{c}_m") for c in ROW_COLUMNS if c not in KEY]))
    unaccounted = missing.select(RECORD).unique().join(rejects, on=RECORD, how="anti").select(RECORD)
    # Two records carrying one eventOffset: the generator reused an offset (never allowed).
    reused = expected.group_by(KEY).agg(pl.len().alias("n")).filter(pl.col("n") > 1)

    tally.count("rows_in_merged", merged.height)
    tally.count("rows_retired", retired.height)
    tally.count("rows_missing", missing.join(rejects, on=RECORD, how="anti").height)
    tally.count("rows_duplicated", int(dup.get_column("n").sum() or 0) - dup.height)
    tally.count("rows_altered", altered.height)
    tally.count("rows_unexpected", unexpected.height)
    tally.count("rows_before_retention", before_retention.height)
    tally.count("records_unaccounted", unaccounted.height)
    tally.count("offsets_reused", reused.height)
    for name, df in zip(EXAMPLE_KINDS, (missing, dup, altered, unexpected, reused), strict=True):
        tally.example(name, df)
    return unaccounted


def _bucket_count(rows_csv: list[Path], files: MergedFiles) -> int:
    """Enough buckets for ~BUCKET_BYTES of input each (1 for small inputs: no bucket files)."""
    size = sum(text_size(p) for p in rows_csv)
    for p in files.paths:
        if p.suffix == ".parquet":
            size += CSV_BYTES_PER_ROW * pl.scan_parquet(p).select(pl.len()).collect().item()
        else:
            size += p.stat().st_size
    return max(1, math.ceil(size / BUCKET_BYTES))


def _csv_pieces(path: Path, schema: pl.Schema) -> Iterator[pl.DataFrame]:
    """A CSV file's rows, CHUNK_BYTES of it at a time, parsed as a scan of it parses them: read
    through a buffer (a scan maps the whole file, and its pages count in the process's memory). A
    compressed chunk of the expected rows (devicestream.verify_chunks) is one piece."""
    if is_chunk(path):
        yield pl.read_csv(io.BytesIO(read_text(path)), schema=schema)
        return
    with open(path, "rb") as f:
        header, rest = f.readline(), b""
        while data := f.read(CHUNK_BYTES):
            buf = rest + data
            end = _whole_records(buf)  # (the rest goes with the next chunk)
            rest = buf[end:]
            if end:
                yield pl.read_csv(io.BytesIO(header + buf[:end]), schema=schema)
        if rest.strip():  # (the last line without its line end)
            yield pl.read_csv(io.BytesIO(header + rest), schema=schema)


def _whole_records(buf: bytes) -> int:
    """The length of `buf` up to its last complete CSV record, `buf` beginning with a record: up to a
    line end with an even number of quotes before it (an odd number: inside a quoted value)."""
    i = buf.rfind(b"\n")
    quotes = buf.count(b'"', 0, max(i, 0))
    while i >= 0 and quotes % 2:
        j = buf.rfind(b"\n", 0, i)
        quotes -= buf.count(b'"', max(j, 0), i)
        i = j
    return i + 1


def _merged_pieces(files: MergedFiles) -> Iterator[pl.DataFrame]:
    for p in files.paths:
        if p.suffix == ".parquet":  # (a compacted segment: compressed, a few row groups at a time)
            yield from scan_text(p).collect_batches(chunk_size=PARQUET_ROWS)
        else:
            yield from _csv_pieces(p, TEXT_SCHEMA)


def _split(
    pieces: Iterable[pl.DataFrame], prepare: Callable[[pl.LazyFrame], pl.LazyFrame], folder: Path, n: int
) -> None:
    """Write the pieces' rows (`prepare`d) to `folder`/_b=<bucket>/<piece>.ipc: a bucket's rows in
    their order are its files in name order."""
    for k, piece in enumerate(pieces):
        rows = prepare(piece.lazy()).with_columns((pl.col("eventOffset").hash(seed=0) % n).alias("_b")).collect()
        for (b,), part in rows.partition_by("_b", as_dict=True, include_key=False).items():
            (folder / f"_b={b}").mkdir(parents=True, exist_ok=True)
            part.write_ipc(folder / f"_b={b}" / f"{k:08d}.ipc", compression="lz4")


def _bucket(folder: Path, i: int, schema: pl.Schema) -> pl.DataFrame:
    paths = sorted((folder / f"_b={i}").glob("*.ipc"))
    if not paths:
        return pl.DataFrame(schema=schema)
    return pl.concat([pl.read_ipc(p, memory_map=False) for p in paths], rechunk=False)


def _expected_rows(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(pl.col(c).fill_null("") for c in EXPECTED_STRINGS).with_columns(
        pl.col("partition").cast(pl.Int64), pl.col("offset").cast(pl.Int64)
    )


def _merged_rows(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(pl.col(c).fill_null("") for c in ROW_COLUMNS)


def compare(
    scan: TopicScan,
    rows_csv: Path | list[Path],
    invalid_csv: Path | list[Path],
    merged_csv: Path,
    rejects_dir: Path,
    examples: int = 5,
    *,
    buckets: int | None = None,
    workdir: Path | None = None,
) -> VerifyReport:
    """The report of `scan` (its expected rows in `rows_csv`, its invalid records in `invalid_csv`)
    against the merged rows beside `merged_csv` and the rejects; in `buckets` buckets (default: from
    the input's size), their files in a temporary folder in `workdir`."""
    rows_paths = rows_csv if isinstance(rows_csv, list) else [rows_csv]
    files = merged_files(merged_csv)  # (merged.csv, or its retained segments)
    invalid = pl.scan_csv(invalid_csv, schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String})
    rejects = _rejects(rejects_dir, merged_rejects_of(merged_csv)).filter(_in_scanned_range(scan)).collect()
    n = buckets or _bucket_count(rows_paths, files)
    tally = _Tally(examples)

    with tempfile.TemporaryDirectory(dir=workdir, prefix="verify-buckets-") as tmp:
        if n == 1:
            pieces = [piece for p in rows_paths for piece in _csv_pieces(p, EXPECTED_SCHEMA)]
            expected = _expected_rows(pl.concat(pieces).lazy() if pieces else pl.LazyFrame(schema=EXPECTED_SCHEMA))
            expected = expected.collect()
            merged = _merged_rows(files.scan_text()).collect()
            tally.unaccounted.append(_compare_bucket(tally, expected, merged, files, rejects, scan).lazy())
            del expected, merged
        else:
            d = Path(tmp)
            exp_pieces = (piece for p in rows_paths for piece in _csv_pieces(p, EXPECTED_SCHEMA))
            _split(exp_pieces, _expected_rows, d / "expected", n)
            _split(_merged_pieces(files), _merged_rows, d / "merged", n)
            exp_schema = _expected_rows(pl.LazyFrame(schema=EXPECTED_SCHEMA)).collect_schema()
            for i in range(n):
                exp, mer = _bucket(d / "expected", i, exp_schema), _bucket(d / "merged", i, TEXT_SCHEMA)
                unaccounted = _compare_bucket(tally, exp, mer, files, rejects, scan)
                del exp, mer
                if unaccounted.height:
                    path = d / f"unaccounted-{i}.ipc"
                    unaccounted.write_ipc(path)
                    tally.unaccounted.append(pl.scan_ipc(path))
        report = _report(scan, tally, files, invalid, rejects.lazy())
    return report


def _report(
    scan: TopicScan, tally: _Tally, files: MergedFiles, invalid: pl.LazyFrame, rejects: pl.LazyFrame
) -> VerifyReport:
    stream = {"engine": "streaming"}
    invalid_not_rejected = invalid.join(rejects, on=RECORD, how="anti")
    valid_rejected = rejects.join(invalid, on=RECORD, how="anti")

    def n(lf: pl.LazyFrame) -> int:
        return lf.select(pl.len()).collect(**stream).item()

    c = tally.counts
    report = VerifyReport(
        records=scan.records,
        valid_records=scan.valid,
        invalid_records=scan.invalid,
        records_without_readings=scan.without_readings,
        rows_expected=scan.rows,
        rows_in_merged=c["rows_in_merged"],
        rejects_found=n(rejects),
        # (more rows in retired segments' bounds than retention removed: the rest are missing)
        rows_missing=c["rows_missing"] + max(0, c["rows_retired"] - files.rows_retired),
        rows_retired=min(c["rows_retired"], files.rows_retired),
        rows_duplicated=c["rows_duplicated"],
        rows_altered=c["rows_altered"],
        rows_unexpected=c["rows_unexpected"],
        records_unaccounted=c["records_unaccounted"],
        invalid_not_rejected=n(invalid_not_rejected),
        valid_rejected=n(valid_rejected),
        offsets_reused=c["offsets_reused"],
        rows_before_retention=c["rows_before_retention"],
        partitions_truncated=sum(1 for start in scan.start_offsets.values() if start > 0),
    )
    if report.records_unaccounted:
        report.unaccounted_ranges = first_offset_ranges(scan.topic, pl.concat(tally.unaccounted))
    if not report.ok:
        found = {
            **tally.found,
            "invalid_not_rejected": invalid_not_rejected.head(tally.examples).collect().to_dicts(),
            "valid_rejected": valid_rejected.head(tally.examples).collect().to_dicts(),
        }
        for name in (*EXAMPLE_KINDS[:4], "invalid_not_rejected", "valid_rejected", "offsets_reused"):
            if getattr(report, name):
                report.examples[name] = found[name]
    return report


def offset_ranges(topic: str, records: pl.DataFrame, limit: int = 20) -> list[OffsetRange]:
    """`records` (partition, offset) as runs of consecutive offsets per partition, the first `limit`."""
    runs = (
        records.sort("partition", "offset")
        .with_columns((pl.col("offset") - pl.int_range(pl.len()).over("partition")).alias("run"))
        .group_by("partition", "run", maintain_order=True)
        .agg(pl.col("offset").min().alias("start"), (pl.col("offset").max() + 1).alias("end"))
        .head(limit)
    )
    return [OffsetRange(topic=topic, partition=p, start=a, end=b) for p, _, a, b in runs.iter_rows()]


def first_offset_ranges(topic: str, records: pl.LazyFrame, limit: int = 20) -> list[OffsetRange]:
    """offset_ranges of distinct `records` too many to hold: read a window of RANGE_WINDOW offsets of
    one partition at a time, joining a run that goes on into the next window, until `limit` runs
    are complete (a run after them has begun) or none are left."""
    bounds = records.group_by("partition").agg(pl.col("offset").min().alias("lo"), pl.col("offset").max().alias("hi"))
    out: list[OffsetRange] = []
    for p, lo, hi in bounds.sort("partition").collect().iter_rows():
        for start in range(lo, hi + 1, RANGE_WINDOW):
            if len(out) > limit:
                return out[:limit]
            window = records.filter(
                pl.col("partition") == p, pl.col("offset").is_between(start, start + RANGE_WINDOW - 1)
            )
            for r in offset_ranges(topic, window.collect(), limit + 2):
                if out and out[-1].partition == p and out[-1].end == r.start:
                    out[-1].end = r.end
                else:
                    out.append(r)
    return out[:limit]
