"""Records/s of `devicestream verify`'s topic scan (devicestream.verify.scan_partition) in one process,
on a real topic: an embedded broker in a temporary folder, one partition filled with events as the
generator makes them (its encoder, zstd batches: bench/stage_keys.produce_keyed), then the scan timed
`--repeat` times, the broker stopped at the end. Records per CPU-second of the scanning process (the
best of the repeats) is the figure: on a shared machine the wall time says more about the others.

    .venv/bin/python scripts/verify_scan_speed.py 1000000              # records/s
    .venv/bin/python scripts/verify_scan_speed.py 300000 --cprofile    # and where the time goes

The venv's editable install points at the main checkout: from a worktree, set PYTHONPATH to it."""

# ruff: noqa: T201 (a command-line measurement: it prints its results)
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench.stage_keys import produce_keyed
from devicestream.broker_process import single_broker
from devicestream.verify import PartitionScanJob, scan_partition


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("events", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cprofile", action="store_true", help="profile one more scan, print the top functions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="verify-speed-") as d, single_broker(Path(d)) as broker:
        topic = broker.new_topic(partitions=1)
        rate = asyncio.run(produce_keyed(broker.bootstrap, broker.security, topic, args.events, "customerId"))
        print(f"produced {args.events:,} events at {rate:,.0f}/s")
        job = PartitionScanJob(
            broker.bootstrap, topic, 0, args.events, Path(d) / "rows.csv", Path(d) / "invalid.csv", broker.security
        )
        best = 0.0
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            scan = asyncio.run(scan_partition(job))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert scan.records == args.events, scan
            best = max(best, scan.records / cpu)
            print(
                f"scan: {scan.records:,} records, {scan.rows:,} rows in {seconds:.2f} s "
                f"({scan.records / seconds:,.0f}/s), {cpu:.2f} CPU-s ({scan.records / cpu:,.0f} per CPU-s)"
            )
        print(f"best: {best:,.0f} records per CPU-second; rows.csv {job.rows_csv.stat().st_size / 2**20:,.0f} MB")
        if args.cprofile:
            prof = cProfile.Profile()
            prof.runcall(asyncio.run, scan_partition(job))
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
