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
counted over the whole of merged.csv. The expected rows are streamed to temporary CSVs (zstd
chunks, devicestream.verify_chunks; each partition scanned by its own process: decoding and checking
records is CPU-bound Python; a record in the generator's own form takes devicestream.validity_fast,
its rows straight from its bytes), then
compared (devicestream.verify_compare) bucket by bucket of keys, so that memory stays bounded
whatever the sizes (~1 GB: 0.85 GB for 2M expected rows, 1.0 GB for 32M); the buckets' temporary
files take ~1/5 of the inputs' size on disk.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import logging
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.structs import TopicPartition

from contract.csv import ROW_COLUMNS
from contract.kafka import PLAINTEXT, KafkaSecurity
from contract.verify_report import VerifyReport
from devicestream.merged_files import (  # noqa: F401 (re-exported: run_check, report, tests)
    _complete_records,
    _rejects,
    merged_files,
    merged_rejects_of,
    split_retired,
)
from devicestream.validity import Invalid, expected_rows
from devicestream.validity_fast import canonical_csv
from devicestream.verify_chunks import RowsWriter
from devicestream.verify_compare import KEY, compare, offset_ranges
from kafka_io import admin as kafka_admin
from kafka_io.clients import make_consumer

__all__ = ["KEY", "Invalid", "compare", "expected_rows", "offset_ranges"]

log = logging.getLogger(__name__)


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
    #: the expected rows' files (a partition's in order, then the next partition's)
    rows_files: list[Path] = field(default_factory=list)

    def merge(self, other: TopicScan) -> None:
        self.records += other.records
        self.valid += other.valid
        self.invalid += other.invalid
        self.without_readings += other.without_readings
        self.rows += other.rows
        self.end_offsets.update(other.end_offsets)
        self.start_offsets.update(other.start_offsets)
        self.first_event_offsets.update(other.first_event_offsets)
        self.rows_files += other.rows_files

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
    #: the rows files' base name: the scan writes <rows_base>-<n>.csv.zst (devicestream.verify_chunks)
    rows_base: Path
    invalid_csv: Path
    security: KafkaSecurity = PLAINTEXT


async def scan_partition(job: PartitionScanJob) -> TopicScan:
    """Stream the partition's records below `job.end` into rows files after `job.rows_base`
    (expected rows plus their record's partition and offset, in `scan.rows_files`) and
    `job.invalid_csv` (partition, offset, reason)."""
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
    gc_was_on = gc.isenabled()
    # The loop makes no reference cycles, but the batch it holds (~20,000 records) makes each of
    # the collector's passes long: measured ~12% of the scan's time.
    gc.disable()
    try:
        consumer.assign([tp])
        scan.start_offsets[job.partition] = (await consumer.beginning_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        # A one-task scan in its own process: blocking local writes are fine here.
        rf = RowsWriter(job.rows_base, ",".join([*ROW_COLUMNS, "partition", "offset"]).encode() + b"\r\n")
        with open(job.invalid_csv, "w", newline="", encoding="utf-8") as inf:  # noqa: ASYNC230
            inv_w = csv.writer(inf)
            inv_w.writerow(["partition", "offset", "reason"])
            while job.end > 0 and await consumer.position(tp) < job.end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=20000)
                lines: list[bytes] = []
                for m in batch.get(tp, ()):
                    if m.offset >= job.end:
                        continue
                    scan.records += 1
                    # a record in the generator's own form: its rows as written (devicestream.validity_fast)
                    fast = canonical_csv(m.value, b",%d,%d\r\n" % (m.partition, m.offset))
                    try:
                        text, n, event_offset = fast or _checked_csv(m.value, m.partition, m.offset)
                    except Invalid as e:
                        scan.invalid += 1
                        inv_w.writerow([m.partition, m.offset, str(e)])
                        continue
                    scan.valid += 1
                    scan.rows += n
                    if not n:
                        scan.without_readings += 1
                    elif first is None or event_offset < first:
                        first = event_offset
                    lines.append(text)
                rf.write(b"".join(lines))
        scan.rows_files = rf.close()
    finally:
        if gc_was_on:
            gc.enable()
        await consumer.stop()
    if first is not None:
        scan.first_event_offsets[job.partition] = first
    return scan


def _checked_csv(value: bytes | None, partition: int, offset: int) -> tuple[bytes, int, int]:
    """The record's expected rows by the full check (devicestream.validity) as CSV lines with its
    partition and offset, how many, and its eventOffset (0 without rows); raises Invalid.

    A lone surrogate escape ("\\ud800": valid JSON, not representable in UTF-8) is written as "?",
    as the Spark job's UTF-8 writer writes it."""
    rows = expected_rows(value)
    out = io.StringIO(newline="")
    csv.writer(out).writerows([*r, partition, offset] for r in rows)
    return out.getvalue().encode("utf-8", errors="replace"), len(rows), int(rows[0][1]) if rows else 0


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
        PartitionScanJob(bootstrap, topic, p, end, folder / f"expected-{p}", folder / f"invalid-{p}.csv", security)
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
    return total, ScanFiles(total.rows_files, [j.invalid_csv for j in jobs])


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
                report = compare(scan, files.rows, files.invalid, merged_csv, rejects_dir, workdir=Path(d))
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
