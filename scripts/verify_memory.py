"""Peak memory of `devicestream verify`'s comparison (devicestream.verify.compare) at a given size,
on generated files (no Kafka): expected rows as the topic scan writes them (one CSV per partition),
merged.csv with every expected row plus a few of each problem, and no rejects.

    .venv/bin/python scripts/verify_memory.py generate /tmp/vmem/8m 8000000    # ~1.8 GB of CSV
    .venv/bin/python scripts/verify_memory.py compare /tmp/vmem/8m     # prints the report, seconds, peak RSS

Run `compare` in a process of its own: the peak RSS it prints is the process's (ru_maxrss). The
venv's editable install points at the main checkout: from a worktree, set PYTHONPATH to it."""

# ruff: noqa: T201 (a command-line measurement: it prints its results)
from __future__ import annotations

import re
import resource
import sys
import threading
import time
from pathlib import Path

import orjson
import polars as pl

PARTITIONS = 4
READINGS = 3  # rows per event


def generate(folder: Path, rows: int) -> None:
    """Streamed (polars sinks): any size fits in little memory."""
    folder.mkdir(parents=True, exist_ok=True)
    events = rows // READINGS
    r = pl.LazyFrame().select(pl.int_range(0, events * READINGS, dtype=pl.Int64).alias("r"))
    ev = pl.col("r") // READINGS
    df = r.select(
        "r",
        ("0b6a2c1e-9f3d-4c7a-8e21-" + ev.cast(pl.String).str.zfill(12)).alias("eventId"),
        (10_000 + ev).cast(pl.String).alias("eventOffset"),
        pl.lit("device").alias("eventPublisher"),
        ("CI" + (ev % 997).cast(pl.String).str.zfill(5)).alias("customerId"),
        pl.lit("2026-11-28T03:33:11.123456Z").alias("eventTime"),
        (pl.col("r") % READINGS).cast(pl.String).alias("deviceIndex"),
        ("D" + (ev % 1000).cast(pl.String).str.zfill(3)).alias("deviceId"),
        (ev % 40).cast(pl.String).alias("temperature"),
        pl.lit("C").alias("measure"),
        pl.lit("SUCCESS").alias("status"),
        (ev % PARTITIONS).alias("partition"),
        (ev // PARTITIONS).alias("offset"),
    )
    for p in range(PARTITIONS):
        df.filter(pl.col("partition") == p).drop("r").sink_csv(folder / f"expected-{p}.csv")
        pl.DataFrame(schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String}).write_csv(
            folder / f"invalid-{p}.csv"
        )
    # a few of each problem: 10 rows missing, 10 duplicated, 10 altered, 10 unexpected (one not a number)
    merged = df.drop("partition", "offset")
    altered = pl.col("r").is_between(200, 209)
    pl.concat(
        [
            merged.with_columns(pl.when(altered).then(pl.lit("99")).otherwise("temperature").alias("temperature"))
            .filter(pl.col("r") >= 10)
            .drop("r"),
            merged.filter(pl.col("r").is_between(100, 109)).drop("r"),
            merged.filter(pl.col("r").is_between(300, 308)).drop("r").with_columns(pl.lit("1").alias("eventOffset")),
            merged.filter(pl.col("r") == 400).drop("r").with_columns(pl.lit("x").alias("eventOffset")),
        ]
    ).sink_csv(folder / "merged.csv")
    (folder / "rejects").mkdir(exist_ok=True)
    (folder / "scan.json").write_bytes(orjson.dumps({"records": events, "valid": events, "rows": events * READINGS}))


def _peak_anon(stop: threading.Event, peak: list[int]) -> None:
    """Sample the process's anonymous RSS (RssAnon: not the input files' pages polars maps) every 20 ms."""
    while not stop.wait(0.02):
        status = Path("/proc/self/status").read_text()
        peak[0] = max(peak[0], int(re.search(r"^RssAnon:\s+(\d+)", status, re.M).group(1)))


def compare(folder: Path) -> None:
    from devicestream.verify import TopicScan, compare, format_report

    doc = orjson.loads((folder / "scan.json").read_bytes())
    ends = {p: len(range(p, doc["records"], PARTITIONS)) for p in range(PARTITIONS)}
    scan = TopicScan(**doc, end_offsets=ends, start_offsets=dict.fromkeys(ends, 0))
    stop, peak = threading.Event(), [0]
    threading.Thread(target=_peak_anon, args=(stop, peak), daemon=True).start()
    t0 = time.monotonic()
    report = compare(
        scan,
        [folder / f"expected-{p}.csv" for p in range(PARTITIONS)],
        [folder / f"invalid-{p}.csv" for p in range(PARTITIONS)],
        folder / "merged.csv",
        folder / "rejects",
    )
    took = time.monotonic() - t0
    stop.set()
    print(format_report(report))
    print(f"compare from {sys.modules[compare.__module__].__file__}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"compare: {took:.1f} s, peak RSS {peak_mb:,.0f} MB (anonymous: {peak[0] / 1024:,.0f} MB)")


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        compare(Path(sys.argv[2]))
