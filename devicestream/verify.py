"""`devicestream verify`: reconcile the topic with what the pipeline produced.

It reads every record of the topic (up to the end offsets at the moment it starts), works out
independently of the Spark job which rows each record must produce (one per device reading) or
whether it must be rejected, and compares that with merged.csv and the Spark job's rejects:

- rows missing: expected rows not in merged.csv (their record not rejected either)
- rows duplicated: rows present more than once in merged.csv
- rows altered: rows present with a value that differs from the record's
- rows unexpected: rows in merged.csv that no record of the topic explains
- records unaccounted: records neither merged (all their rows present) nor rejected
- invalid records not rejected / valid records rejected: disagreements on what is bad input

Exit code 0 only when every one of these is zero. Memory stays bounded whatever the sizes: the
expected rows are streamed to temporary CSVs (one per partition, each scanned by its own process:
decoding and checking records is CPU-bound Python) and compared with polars' streaming engine.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import logging
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from contract.csv import REJECT_COLUMNS, ROW_COLUMNS, parse_batch_file_name
from contract.events import REQUIRED_FIELDS
from contract.kafka import PLAINTEXT, KafkaSecurity, aiokafka_options

log = logging.getLogger(__name__)

KEY = ["eventOffset", "deviceIndex"]
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class VerifyError(RuntimeError):
    """The reconciliation could not run (Kafka unreachable, topic missing); the message says why."""


class Invalid(ValueError):
    """A record the pipeline must reject; the message is the reason."""


# ---- what a record must become (pure) ---------------------------------------------------------


def _int(v: Any, name: str, bounds: tuple[int, int]) -> str:
    if isinstance(v, bool) or not isinstance(v, int) or not bounds[0] <= v <= bounds[1]:
        raise Invalid(f"{name} is not an integer")
    return str(v)


def _opt_str(v: Any, name: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise Invalid(f"{name} is not a string")
    return v


def _event_time(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("eventTime is not a timestamp")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError as e:
        raise Invalid("eventTime is not a timestamp") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_rows(value: bytes | None) -> list[list[str]]:
    """The CSV rows (ROW_COLUMNS order, null as "") that the record `value` must produce; raises
    Invalid with the reason when the record must be rejected."""
    if not value:
        raise Invalid("empty value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid("value is not UTF-8") from e
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise Invalid("value is not JSON") from e
    if not isinstance(doc, dict):
        raise Invalid("value is not a JSON object")
    for f in REQUIRED_FIELDS:
        if doc.get(f) is None:
            raise Invalid(f"missing {f}")
    event_id = _opt_str(doc["eventId"], "eventId")
    offset = _int(doc["eventOffset"], "eventOffset", INT64)
    publisher = _opt_str(doc.get("eventPublisher"), "eventPublisher")
    customer = _opt_str(doc.get("customerId"), "customerId")
    event_time = _event_time(doc["eventTime"])
    data = doc.get("data")
    if data is None:
        return []
    if not isinstance(data, dict):
        raise Invalid("data is not an object")
    devices = data.get("devices")
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise Invalid("data.devices is not a list")
    rows = []
    for i, r in enumerate(devices):
        if not isinstance(r, dict):
            raise Invalid("a device reading is not an object")
        temp = r.get("temperature")
        rows.append(
            [
                event_id,
                offset,
                publisher,
                customer,
                event_time,
                str(i),
                _opt_str(r.get("deviceId"), "deviceId"),
                "" if temp is None else _int(temp, "temperature", INT32),
                _opt_str(r.get("measure"), "measure"),
                _opt_str(r.get("status"), "status"),
            ]
        )
    return rows


# ---- reading the topic ------------------------------------------------------------------------


@dataclass
class TopicScan:
    records: int = 0
    valid: int = 0
    invalid: int = 0
    without_readings: int = 0
    rows: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanFiles:
    """Where a scan wrote the expected rows and the invalid records (one file each per partition)."""

    rows: list[Path]
    invalid: list[Path]


async def topic_partitions(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_options(security))
    await admin.start()
    try:
        desc = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not desc or desc[0].get("error_code", 0) != 0:
        return []
    return sorted(p["partition"] for p in desc[0]["partitions"])


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
    consumer = AIOKafkaConsumer(
        bootstrap_servers=job.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **aiokafka_options(job.security),
    )
    await consumer.start()
    try:
        consumer.assign([tp])
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
                    rows_w.writerows([*r, m.partition, m.offset] for r in rows)
    finally:
        await consumer.stop()
    return scan


def _scan_partition_in_process(job: PartitionScanJob) -> TopicScan:
    return asyncio.run(scan_partition(job))


async def end_offsets(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> dict[int, int]:
    """Each partition's end offset now (what the scan reads up to)."""
    parts = await topic_partitions(bootstrap, topic, security)
    if not parts:
        raise VerifyError(f"topic {topic} not found at {bootstrap}")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_options(security))
    await consumer.start()
    try:
        end = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in end.items()}


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
    total = TopicScan()
    for sc in scans:
        total.records += sc.records
        total.valid += sc.valid
        total.invalid += sc.invalid
        total.without_readings += sc.without_readings
        total.rows += sc.rows
        total.end_offsets.update(sc.end_offsets)
    return total, ScanFiles([j.rows_csv for j in jobs], [j.invalid_csv for j in jobs])


# ---- comparing --------------------------------------------------------------------------------


@dataclass
class Report:
    records: int
    valid_records: int
    invalid_records: int
    records_without_readings: int
    rows_expected: int
    rows_in_merged: int
    rejects_found: int
    rows_missing: int = 0
    rows_duplicated: int = 0
    rows_altered: int = 0
    rows_unexpected: int = 0
    records_unaccounted: int = 0
    invalid_not_rejected: int = 0
    valid_rejected: int = 0
    offsets_reused: int = 0
    examples: dict[str, list] = field(default_factory=dict)

    PROBLEMS = (
        "rows_missing",
        "rows_duplicated",
        "rows_altered",
        "rows_unexpected",
        "records_unaccounted",
        "invalid_not_rejected",
        "valid_rejected",
    )

    @property
    def ok(self) -> bool:
        return all(getattr(self, k) == 0 for k in self.PROBLEMS)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _strings(path: Path | list[Path], columns: tuple[str, ...] | list[str]) -> pl.LazyFrame:
    return pl.scan_csv(path, schema=dict.fromkeys(columns, pl.String)).with_columns(
        pl.col(c).fill_null("") for c in columns
    )


def _rejects(rejects_dir: Path) -> pl.LazyFrame:
    files = [p for p in sorted(rejects_dir.glob("batch-*.csv")) if parse_batch_file_name(p.name) is not None]
    if not files:
        return pl.LazyFrame(schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String})
    frames = [
        pl.scan_csv(f, schema=dict.fromkeys(REJECT_COLUMNS, pl.String)).select(
            pl.col("partition").cast(pl.Int64), pl.col("offset").cast(pl.Int64), "reason"
        )
        for f in files
    ]
    return pl.concat(frames).unique(["partition", "offset"])


def compare(
    scan: TopicScan,
    rows_csv: Path | list[Path],
    invalid_csv: Path | list[Path],
    merged_csv: Path,
    rejects_dir: Path,
    examples: int = 5,
) -> Report:
    stream = {"engine": "streaming"}
    expected = _strings(rows_csv, [*ROW_COLUMNS, "partition", "offset"]).with_columns(
        pl.col("partition").cast(pl.Int64), pl.col("offset").cast(pl.Int64)
    )
    if merged_csv.exists() and merged_csv.stat().st_size > 0:
        merged = _strings(merged_csv, ROW_COLUMNS)
    else:
        merged = pl.LazyFrame(schema=dict.fromkeys(ROW_COLUMNS, pl.String))
    invalid = pl.scan_csv(invalid_csv, schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String})
    rejects = _rejects(rejects_dir)

    counts = merged.group_by(KEY).agg(pl.len().alias("n"))
    rows_in_merged = merged.select(pl.len()).collect(**stream).item()
    dup = counts.filter(pl.col("n") > 1)
    missing = expected.join(counts, on=KEY, how="anti")
    unexpected = counts.join(expected.select(KEY), on=KEY, how="anti")
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

    report = Report(
        records=scan.records,
        valid_records=scan.valid,
        invalid_records=scan.invalid,
        records_without_readings=scan.without_readings,
        rows_expected=scan.rows,
        rows_in_merged=rows_in_merged,
        rejects_found=n(rejects),
        rows_missing=n(missing.join(rejects, on=["partition", "offset"], how="anti")),
        rows_duplicated=int(dup.select((pl.col("n") - 1).sum()).collect(**stream).item() or 0),
        rows_altered=n(altered),
        rows_unexpected=n(unexpected),
        records_unaccounted=n(unaccounted),
        invalid_not_rejected=n(invalid_not_rejected),
        valid_rejected=n(valid_rejected),
        offsets_reused=n(reused),
    )
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


def verify(
    bootstrap: str,
    topic: str,
    merged_csv: Path,
    rejects_dir: Path,
    *,
    wait_s: float = 0.0,
    workdir: Path | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> Report:
    """Scan the topic once, then compare; with `wait_s`, compare again until clean or the deadline
    (the pipeline may still be draining what was just produced)."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="verify-") as d:
        scan, files = scan_topic(bootstrap, topic, Path(d), security=security)
        end = time.monotonic() + wait_s
        while True:
            report = compare(scan, files.rows, files.invalid, merged_csv, rejects_dir)
            if report.ok or time.monotonic() >= end:
                return report
            time.sleep(1.0)


def format_report(report: Report) -> str:
    d = report.as_dict()
    lines = [f"verify: {'OK' if report.ok else 'PROBLEMS FOUND'}"]
    for k, v in d.items():
        if k not in ("examples", "ok"):
            flag = "  <-- " if k in Report.PROBLEMS and v else ""
            lines.append(f"  {k:<26} {v}{flag}")
    for k, ex in report.examples.items():
        lines.append(f"  e.g. {k}: {orjson.dumps(ex[:3]).decode()}")
    return "\n".join(lines)
