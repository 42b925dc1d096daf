"""`python -m bench.query_probe '<json>'`: one query in a fresh process, so its peak memory is its
own. Its argument is a QueryProbeRequest, its last line a QueryProbeAnswer (bench/query_result.py).
Kinds: ours-csv / ours-parquet (the merger's services.merger.query.run_query, streaming into a file,
as the routes do), polars-csv / polars-parquet (the baseline: what a user would write with polars
directly on merged.csv), idle (the floor: nothing but the imports)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import polars as pl

from bench.query_result import QueryProbeAnswer, QueryProbeRequest
from services.merger.query import build_query, parsed_event_time, predicate, run_query


def own_peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, the high-water mark of its own address space.
    Not getrusage's ru_maxrss, which on Linux starts from the parent's resident size when the parent
    forks and execs (the bench process that built a 1 GB file: it made an idle probe read 1,140 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise SystemExit("no VmHWM in /proc/self/status")


def main(arg: str) -> None:
    a = QueryProbeRequest.model_validate_json(arg)
    src, out, kind = a.source, a.out, a.kind
    q = build_query(since=a.since, device_ids=a.device_ids, statuses=a.statuses, columns=a.columns)
    t0 = time.perf_counter()
    if kind in ("ours-csv", "ours-parquet"):
        run_query([(src, a.rows)], q, "csv" if kind == "ours-csv" else "parquet", out)
    elif kind == "polars-csv":
        # The direct way: scan, filter, collect in memory, write it out.
        lf = pl.scan_csv(src, infer_schema_length=10_000)
        cond = predicate(q, parsed_event_time())
        if cond is not None:
            lf = lf.filter(cond)
        if q.columns:
            lf = lf.select(q.columns)
        lf.collect().write_csv(out)
    elif kind == "idle":  # the floor: Python with polars imported, no query
        out.write_bytes(b"")
    elif kind == "polars-parquet":
        pl.scan_csv(src, infer_schema_length=10_000).sink_parquet(out, compression="zstd")
    else:
        raise SystemExit(f"unknown kind {kind}")
    seconds = time.perf_counter() - t0
    peak_mb = own_peak_rss_mb()
    sys.stdout.write(
        QueryProbeAnswer(seconds=seconds, peak_rss_mb=peak_mb, out_bytes=out.stat().st_size).model_dump_json()
    )


if __name__ == "__main__":
    main(sys.argv[1])
