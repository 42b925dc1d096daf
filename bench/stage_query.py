"""Querying the merged data: a filtered query over a large merged.csv (time and peak memory) against
scanning it with polars directly, Parquet export throughput, and the per-batch cost of keeping the
device figures up to date.

Each query runs in a fresh process (bench/query_probe.py) so its peak RSS is its own (VmHWM), and the
filtered query is measured again on a file of a fifth of the rows: its memory must not grow; ours is the
merger's own code (services.merger.query.run_query: the committed rows only, polars' streaming
engine into a file, exactly what GET /merged.csv?... and /merged.parquet run). The device figures
are measured in-process on services.merger.devices (parse the newly committed bytes, fold them in)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import PY, Config, Figure, Spread, StageError, StageResult, Target
from bench.data import csv_rows
from bench.query_result import ProbeKind, QueryProbeAnswer, QueryProbeRequest
from contract.csv import ROW_HEADER
from devicestream.paths import REPO_ROOT
from services.merger.devices import EPOCH, DeviceBook, parse_rows

T0 = datetime(2026, 11, 28, tzinfo=UTC)
US_PER_ROW = 92  # bench.data.csv_rows: 137 us between events, 1.5 rows per event
QUERY_RATIO_TARGET = 0.5
PARQUET_RATIO_TARGET = 0.5
DEVICE_BATCH_TARGET_MS = 5.0


@dataclass(frozen=True)
class QuerySizes:
    rows: int
    chunk_rows: int
    reps: int
    device_batch_rows: int
    device_reps: int
    #: The second size the query's peak memory is measured at (bounded: it does not grow with the file).
    small_rows: int = 0

    @property
    def second_rows(self) -> int:
        return self.small_rows or max(self.rows // 5, 1)


FULL = QuerySizes(
    rows=10_000_000, chunk_rows=500_000, reps=3, device_batch_rows=5_000, device_reps=50, small_rows=2_000_000
)
QUICK = QuerySizes(rows=300_000, chunk_rows=100_000, reps=2, device_batch_rows=5_000, device_reps=20)
#: Issue #25: the filtered query's peak RSS on 10M rows, and at most this much more at 5x the rows.
QUERY_RSS_TARGET_MB = 512.0
QUERY_RSS_GROWTH_LIMIT = 1.25


def build_merged(path: Path, sizes: QuerySizes, rows: int | None = None) -> int:
    """merged.csv of `rows` (default sizes.rows) rows (eventTime moving forward); returns its size."""
    rows = sizes.rows if rows is None else rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write((ROW_HEADER + "\n").encode())
        for start in range(0, rows, sizes.chunk_rows):
            n = min(sizes.chunk_rows, rows - start)
            f.write(csv_rows(n, first_offset=10_000 + start, start=T0 + timedelta(microseconds=start * US_PER_ROW)))
    return path.stat().st_size


def filtered_query(rows: int) -> dict[str, Any]:
    """One device, errors only, the second half of the time range (of `rows` rows), three columns."""
    return {
        "since": (T0 + timedelta(microseconds=rows * US_PER_ROW // 2)).isoformat(),
        "device_ids": ["D003"],
        "statuses": ["ERROR"],
        "columns": ["eventTime,deviceId,temperature"],
    }


def probe(kind: ProbeKind, source: Path, out: Path, rows: int, **query: Any) -> QueryProbeAnswer:
    arg = QueryProbeRequest(kind=kind, source=source, out=out, rows=rows, **query).model_dump_json()
    res = subprocess.run([PY, "-m", "bench.query_probe", arg], capture_output=True, text=True, cwd=REPO_ROOT)
    if res.returncode != 0:
        raise StageError(f"query probe {kind} failed: {res.stderr[-800:]}")
    doc = QueryProbeAnswer.model_validate_json(res.stdout.strip().splitlines()[-1])
    out.unlink(missing_ok=True)
    return doc


def measure_device_batches(sizes: QuerySizes) -> tuple[list[float], list[float], int]:
    """Per-batch ms of parse + fold for batches of device_batch_rows rows (after a warm-up of 20
    batches), and, as the baseline, the ms to recompute the figures from all those rows at once."""
    book = DeviceBook(window_s=300)
    batches = [
        csv_rows(
            sizes.device_batch_rows,
            first_offset=10_000 + i * sizes.device_batch_rows,
            start=T0 + timedelta(microseconds=i * sizes.device_batch_rows * US_PER_ROW),
        )
        for i in range(20 + sizes.device_reps)
    ]
    # the clock at the end of the data, so the recent window holds the newest rows (as in a live run)
    now = (T0 - EPOCH) // timedelta(microseconds=1) + len(batches) * sizes.device_batch_rows * US_PER_ROW
    for b in batches[:20]:
        book.apply(parse_rows(b), now)
    times = []
    for b in batches[20:]:
        t0 = time.perf_counter()
        book.apply(parse_rows(b), now)
        times.append((time.perf_counter() - t0) * 1000)
    everything = b"".join(batches)
    full_ms = []
    for _ in range(3):
        t0 = time.perf_counter()
        again = DeviceBook(window_s=300)
        again.apply(parse_rows(everything), now)
        full_ms.append((time.perf_counter() - t0) * 1000)
    if again.to_doc() != book.to_doc():
        raise StageError("device figures built batch by batch differ from one recomputation")
    return times, full_ms, len(batches) * sizes.device_batch_rows


def run(cfg: Config, sizes: QuerySizes | None = None) -> StageResult:
    sizes = sizes or (QUICK if cfg.quick else FULL)
    res = StageResult("query")
    quick_note = [f"quick mode: {sizes.rows:,} rows instead of 10,000,000"] if cfg.quick else []
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        root = Path(tmp)
        merged = root / "merged.csv"
        size = build_merged(merged, sizes)
        query = filtered_query(sizes.rows)
        ours = [probe("ours-csv", merged, root / "ours.csv", sizes.rows, **query) for _ in range(sizes.reps)]
        base = [probe("polars-csv", merged, root / "polars.csv", sizes.rows, **query) for _ in range(sizes.reps)]
        if ours[0].out_bytes != base[0].out_bytes:
            raise StageError(f"filtered answers differ: {ours[0].out_bytes} vs {base[0].out_bytes} bytes")
        idle_mb = probe("idle", merged, root / "idle", sizes.rows).peak_rss_mb
        pq_ours = [probe("ours-parquet", merged, root / "ours.parquet", sizes.rows) for _ in range(sizes.reps)]
        pq_base = [probe("polars-parquet", merged, root / "polars.parquet", sizes.rows) for _ in range(sizes.reps)]
        merged.unlink()  # the second size: the same query on a file of second_rows rows
        small = root / "merged-small.csv"
        small_size = build_merged(small, sizes, sizes.second_rows)
        q_small = filtered_query(sizes.second_rows)
        ours_small = [probe("ours-csv", small, root / "s.csv", sizes.second_rows, **q_small) for _ in range(sizes.reps)]
    sizes_doc = {"rows": sizes.rows, "merged_bytes": size, "reps": sizes.reps}
    how = "services.merger.query.run_query in a fresh process (streaming engine, into a file, as the routes do)"
    res.figures.append(
        Figure(
            stage="query",
            name="filtered query (1 device, errors, half the time range, 3 columns)",
            unit="s",
            value=Spread.of([p.seconds for p in ours]),
            baseline_name="pl.scan_csv(...).filter(...).collect() on merged.csv",
            baseline=Spread.of([p.seconds for p in base]),
            ratio_inverted=True,
            target=Target("ratio", ">=", QUERY_RATIO_TARGET, f"ratio (speed vs polars) >= {QUERY_RATIO_TARGET}"),
            sizes={**sizes_doc, "answer_bytes": ours[0].out_bytes},
            notes=[how, *quick_note],
        )
    )
    res.figures.append(
        Figure(
            stage="query",
            name="filtered query peak RSS",
            unit="MB",
            value=Spread.of([p.peak_rss_mb for p in ours]),
            baseline_name="the same query with polars directly (collect in memory)",
            baseline=Spread.of([p.peak_rss_mb for p in base]),
            ratio_inverted=True,
            target=Target("value", "<=", QUERY_RSS_TARGET_MB, f"<= {QUERY_RSS_TARGET_MB:,.0f} MB"),
            sizes=sizes_doc,
            notes=[
                "peak RSS of the probe process (VmHWM: its own, not the bench's); "
                f"Python with polars imported and no query: {idle_mb:,.0f} MB",
                *quick_note,
            ],
        )
    )
    big_mb, small_mb = Spread.of([p.peak_rss_mb for p in ours]), Spread.of([p.peak_rss_mb for p in ours_small])
    grows = big_mb.median > small_mb.median * QUERY_RSS_GROWTH_LIMIT
    res.figures.append(
        Figure(
            stage="query",
            name=f"filtered query peak RSS at {sizes.rows / sizes.second_rows:g}x the rows",
            unit="MB",
            value=big_mb,
            baseline_name=f"the same query on {sizes.second_rows:,} rows ({small_size:,} bytes)",
            baseline=small_mb,
            target=Target(
                "ratio",
                "<=",
                QUERY_RSS_GROWTH_LIMIT,
                f"does not grow with the file: ratio <= {QUERY_RSS_GROWTH_LIMIT}",
            ),
            sizes={**sizes_doc, "second_rows": sizes.second_rows, "second_bytes": small_size},
            notes=[
                f"{'GROWS' if grows else 'does not grow'}: {small_mb.median:,.0f} MB on {sizes.second_rows:,} rows, "
                f"{big_mb.median:,.0f} MB on {sizes.rows:,} rows",
                *quick_note,
            ],
        )
    )
    res.figures.append(
        Figure(
            stage="query",
            name="Parquet export throughput",
            unit="rows/s",
            value=Spread.of([sizes.rows / p.seconds for p in pq_ours]),
            baseline_name="pl.scan_csv(...).sink_parquet(...) (types inferred, no eventTime parsing)",
            baseline=Spread.of([sizes.rows / p.seconds for p in pq_base]),
            target=Target("ratio", ">=", PARQUET_RATIO_TARGET, f"ratio >= {PARQUET_RATIO_TARGET}"),
            sizes={
                **sizes_doc,
                "parquet_bytes": pq_ours[0].out_bytes,
                "peak_rss_mb": Spread.of([p.peak_rss_mb for p in pq_ours]).median,
            },
            notes=["all rows, typed (eventTime a UTC timestamp), zstd", *quick_note],
        )
    )
    batch_ms, full_ms, total_rows = measure_device_batches(sizes)
    res.figures.append(
        Figure(
            stage="query",
            name=f"device figures: one {sizes.device_batch_rows:,}-row batch",
            unit="ms",
            value=Spread.of(batch_ms),
            baseline_name=f"recomputing them from all {total_rows:,} rows at once",
            baseline=Spread.of(full_ms),
            ratio_inverted=True,
            target=Target("value", "<=", DEVICE_BATCH_TARGET_MS, f"< {DEVICE_BATCH_TARGET_MS:.0f} ms per batch"),
            sizes={"batch_rows": sizes.device_batch_rows, "reps": sizes.device_reps},
            notes=["parse the batch's columns with polars, group by device/second/status, fold into the book"],
        )
    )
    return res
