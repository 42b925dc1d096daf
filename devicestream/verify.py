"""`devicestream verify`: reconcile the topic with what the pipeline produced.

It reads every record of the topic (up to the end offsets at the moment it starts), works out
independently of the Spark job which rows each record must produce (one per device reading) or
whether it must be rejected, and compares that with merged.csv and the rejects (the merger's
rejects.csv beside merged.csv, and the Spark job's reject files not merged yet):

- rows missing: expected rows not in merged.csv (their record not rejected either)
- rows duplicated: rows present more than once in merged.csv
- rows altered: rows present with a value that differs from the record's
- rows unexpected: rows in merged.csv that no record of the topic explains
- records unaccounted: records neither merged (all their rows present) nor rejected
- invalid records not rejected / valid records rejected: disagreements on what is bad input
  (decided by devicestream.validity exactly as the Spark job decides it)
- offsets reused: two records carrying one eventOffset (the generator must never do that)

Exit code 0 only when every one of these is zero.

After retention deleted a partition's oldest segments (its log start offset above 0) verify can
only check what the topic still holds: records below the log start offset cannot be missing,
altered or reused as far as verify knows, and their rejects are ignored. Merged rows no surviving
record explains are counted as `rows_before_retention` (not a problem) when their eventOffset is
below the retention floor (the highest first surviving eventOffset of a truncated partition;
eventOffsets grow within a partition), and as `rows_unexpected` otherwise. Duplicates are still
counted over the whole of merged.csv. Memory stays bounded whatever the sizes: the
expected rows are streamed to temporary CSVs (one per partition, each scanned by its own process:
decoding and checking records is CPU-bound Python) and compared with polars' streaming engine.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
from aiokafka.structs import TopicPartition

from contract.csv import ROW_COLUMNS
from contract.kafka import PLAINTEXT, KafkaSecurity
from contract.verify_report import OffsetRange, VerifyReport
from devicestream.merged_files import (  # noqa: F401 (re-exported: run_check, report, tests)
    _complete_records,
    _rejects,
    merged_files,
    merged_rejects_of,
    split_retired,
)
from devicestream.validity import Invalid, expected_rows
from kafka_io import admin as kafka_admin
from kafka_io.clients import make_consumer

__all__ = ["Invalid", "expected_rows"]

log = logging.getLogger(__name__)

KEY = ["eventOffset", "deviceIndex"]


class VerifyError(RuntimeError):
    """The reconciliation could not run (Kafka unreachable, topic missing); the message says why."""


# ---- reading the topic ------------------------------------------------------------------------


@dataclass
class TopicScan:
    topic: str = ""
    records: int = 0
    valid: int = 0
    invalid: int = 0
    without_readings: int = 0
    rows: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)
    #: each partition's log start offset: above 0, retention deleted the records before it
    start_offsets: dict[int, int] = field(default_factory=dict)
    #: each partition's smallest eventOffset among the valid records still in the topic
    first_event_offsets: dict[int, int] = field(default_factory=dict)

    def merge(self, other: TopicScan) -> None:
        self.records += other.records
        self.valid += other.valid
        self.invalid += other.invalid
        self.without_readings += other.without_readings
        self.rows += other.rows
        self.end_offsets.update(other.end_offsets)
        self.start_offsets.update(other.start_offsets)
        self.first_event_offsets.update(other.first_event_offsets)

    def retention_floor(self) -> int | None:
        """The eventOffset below which a merged row may come from a record retention deleted: the
        generator's eventOffsets grow within a partition, so a deleted record of partition p had
        an eventOffset below p's first surviving one. None when retention deleted nothing."""
        truncated = [self.first_event_offsets.get(p) for p, start in self.start_offsets.items() if start > 0]
        floors = [f for f in truncated if f is not None]
        return max(floors) if floors else None


@dataclass(frozen=True)
class ScanFiles:
    """Where a scan wrote the expected rows and the invalid records (one file each per partition)."""

    rows: list[Path]
    invalid: list[Path]


@dataclass(frozen=True)
class PartitionScanJob:
    """One partition to scan, up to `end` (exclusive), into its own two CSV files."""

    bootstrap: str
    topic: str
    partition: int
    end: int
    rows_csv: Path
    invalid_csv: Path
    security: KafkaSecurity = PLAINTEXT


async def scan_partition(job: PartitionScanJob) -> TopicScan:
    """Stream the partition's records below `job.end` into `job.rows_csv` (expected rows plus their
    record's partition and offset) and `job.invalid_csv` (partition, offset, reason)."""
    scan = TopicScan(end_offsets={job.partition: job.end})
    tp = TopicPartition(job.topic, job.partition)
    consumer = make_consumer(
        job.bootstrap,
        job.security,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    first: int | None = None
    try:
        consumer.assign([tp])
        scan.start_offsets[job.partition] = (await consumer.beginning_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        # A one-task scan in its own process: blocking local writes are fine here.
        with open(job.rows_csv, "w", newline="") as rf, open(job.invalid_csv, "w", newline="") as inf:  # noqa: ASYNC230
            rows_w, inv_w = csv.writer(rf), csv.writer(inf)
            rows_w.writerow([*ROW_COLUMNS, "partition", "offset"])
            inv_w.writerow(["partition", "offset", "reason"])
            while job.end > 0 and await consumer.position(tp) < job.end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=20000)
                for m in batch.get(tp, ()):
                    if m.offset >= job.end:
                        continue
                    scan.records += 1
                    try:
                        rows = expected_rows(m.value)
                    except Invalid as e:
                        scan.invalid += 1
                        inv_w.writerow([m.partition, m.offset, str(e)])
                        continue
                    scan.valid += 1
                    scan.rows += len(rows)
                    if not rows:
                        scan.without_readings += 1
                    else:
                        event_offset = int(rows[0][1])
                        first = event_offset if first is None else min(first, event_offset)
                    rows_w.writerows([*r, m.partition, m.offset] for r in rows)
    finally:
        await consumer.stop()
    if first is not None:
        scan.first_event_offsets[job.partition] = first
    return scan


def _scan_partition_in_process(job: PartitionScanJob) -> TopicScan:
    return asyncio.run(scan_partition(job))


async def end_offsets(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> dict[int, int]:
    """Each partition's end offset now (what the scan reads up to)."""
    ends = await kafka_admin.end_offsets(bootstrap, topic, security)
    if not ends:
        raise VerifyError(f"topic {topic} not found at {bootstrap}")
    return ends


def scan_topic(
    bootstrap: str, topic: str, folder: Path, workers: int | None = None, security: KafkaSecurity = PLAINTEXT
) -> tuple[TopicScan, ScanFiles]:
    """Scan every partition up to its current end offset, one process per partition (at most
    `workers`, default the CPU count): decoding and checking records is CPU-bound Python."""
    ends = asyncio.run(end_offsets(bootstrap, topic, security))
    jobs = [
        PartitionScanJob(bootstrap, topic, p, end, folder / f"expected-{p}.csv", folder / f"invalid-{p}.csv", security)
        for p, end in sorted(ends.items())
    ]
    workers = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    if workers == 1:
        scans = [_scan_partition_in_process(j) for j in jobs]
    else:
        # spawn: the caller may have threads (an event loop, a web server); fork would copy them.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            scans = list(pool.map(_scan_partition_in_process, jobs))
    total = TopicScan(topic=topic)
    for sc in scans:
        total.merge(sc)
    return total, ScanFiles([j.rows_csv for j in jobs], [j.invalid_csv for j in jobs])


# ---- comparing --------------------------------------------------------------------------------


def _strings(path: Path | list[Path], columns: tuple[str, ...] | list[str]) -> pl.LazyFrame:
    return pl.scan_csv(path, schema=dict.fromkeys(columns, pl.String)).with_columns(
        pl.col(c).fill_null("") for c in columns
    )


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


def compare(
    scan: TopicScan,
    rows_csv: Path | list[Path],
    invalid_csv: Path | list[Path],
    merged_csv: Path,
    rejects_dir: Path,
    examples: int = 5,
) -> VerifyReport:
    stream = {"engine": "streaming"}
    expected = _strings(rows_csv, [*ROW_COLUMNS, "partition", "offset"]).with_columns(
        pl.col("partition").cast(pl.Int64), pl.col("offset").cast(pl.Int64)
    )
    files = merged_files(merged_csv)  # (merged.csv, or its retained segments)
    merged = files.scan_text().with_columns(pl.col(c).fill_null("") for c in ROW_COLUMNS)
    invalid = pl.scan_csv(invalid_csv, schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String})
    rejects = _rejects(rejects_dir, merged_rejects_of(merged_csv)).filter(_in_scanned_range(scan))

    counts = merged.group_by(KEY).agg(pl.len().alias("n"))
    rows_in_merged = merged.select(pl.len()).collect(**stream).item()
    dup = counts.filter(pl.col("n") > 1)
    retired, missing = split_retired(expected.join(counts, on=KEY, how="anti"), files, KEY)
    unexpected, before_retention = _split_unexplained(
        counts.join(expected.select(KEY), on=KEY, how="anti"), scan.retention_floor()
    )
    first = merged.unique(KEY, keep="first")
    joined = expected.join(first, on=KEY, how="inner", suffix="_m")
    differs = pl.any_horizontal([pl.col(c) != pl.col(f"{c}_m") for c in ROW_COLUMNS if c not in KEY])
    altered = joined.filter(differs)
    missing_records = missing.select("partition", "offset").unique()
    unaccounted = missing_records.join(rejects, on=["partition", "offset"], how="anti")
    invalid_not_rejected = invalid.join(rejects, on=["partition", "offset"], how="anti")
    valid_rejected = rejects.join(invalid, on=["partition", "offset"], how="anti")
    # Two records carrying one eventOffset: the generator reused an offset (never allowed).
    reused = expected.group_by(KEY).agg(pl.len().alias("n")).filter(pl.col("n") > 1)

    def n(lf: pl.LazyFrame) -> int:
        return lf.select(pl.len()).collect(**stream).item()

    rows_retired = n(retired)
    report = VerifyReport(
        records=scan.records,
        valid_records=scan.valid,
        invalid_records=scan.invalid,
        records_without_readings=scan.without_readings,
        rows_expected=scan.rows,
        rows_in_merged=rows_in_merged,
        rejects_found=n(rejects),
        # (more rows in retired segments' bounds than retention removed: the rest are missing)
        rows_missing=n(missing.join(rejects, on=["partition", "offset"], how="anti"))
        + max(0, rows_retired - files.rows_retired),
        rows_retired=min(rows_retired, files.rows_retired),
        rows_duplicated=int(dup.select((pl.col("n") - 1).sum()).collect(**stream).item() or 0),
        rows_altered=n(altered),
        rows_unexpected=n(unexpected),
        records_unaccounted=n(unaccounted),
        invalid_not_rejected=n(invalid_not_rejected),
        valid_rejected=n(valid_rejected),
        offsets_reused=n(reused),
        rows_before_retention=n(before_retention),
        partitions_truncated=sum(1 for start in scan.start_offsets.values() if start > 0),
    )
    if report.records_unaccounted:
        report.unaccounted_ranges = offset_ranges(scan.topic, unaccounted.collect(**stream))
    if not report.ok:
        for name, lf in (
            ("rows_missing", missing),
            ("rows_duplicated", dup),
            ("rows_altered", altered),
            ("rows_unexpected", unexpected),
            ("invalid_not_rejected", invalid_not_rejected),
            ("valid_rejected", valid_rejected),
            ("offsets_reused", reused),
        ):
            if getattr(report, name):
                report.examples[name] = lf.head(examples).collect().to_dicts()
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


def verify(
    bootstrap: str,
    topic: str,
    merged_csv: Path,
    rejects_dir: Path,
    *,
    wait_s: float = 0.0,
    workdir: Path | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> VerifyReport:
    """Scan the topic once, then compare; with `wait_s`, compare again until clean or the deadline
    (the pipeline may still be draining what was just produced)."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="verify-") as d:
        scan, files = scan_topic(bootstrap, topic, Path(d), security=security)
        end = time.monotonic() + wait_s
        gone = 0
        while True:
            try:
                report = compare(scan, files.rows, files.invalid, merged_csv, rejects_dir)
            except FileNotFoundError:  # a segment retention removed while it was read: read them again
                gone += 1
                if gone > 3:
                    raise
                continue
            if report.ok or time.monotonic() >= end:
                return report
            time.sleep(1.0)


def format_report(report: VerifyReport) -> str:
    d = report.model_dump()
    lines = [f"verify: {'OK' if report.ok else 'PROBLEMS FOUND'}"]
    for k, v in d.items():
        if k not in ("examples", "ok", "unaccounted_ranges"):
            flag = "  <-- " if k in VerifyReport.PROBLEMS and v else ""
            lines.append(f"  {k:<26} {v}{flag}")
    for r in report.unaccounted_ranges:
        lines.append(f"  not merged: {r.describe()} ({r.end - r.start} records)")
    for k, ex in report.examples.items():
        lines.append(f"  e.g. {k}: {orjson.dumps(ex[:3]).decode()}")
    return "\n".join(lines)
