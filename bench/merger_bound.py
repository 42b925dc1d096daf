"""What the merger's row checks alone allow: the bound on its catch-up below `tail`'s copy.

The catch-up reads and checks every batch file (services.merger.batchfile.parse_batch, in the
engine's read-ahead pool of two threads) before it appends it. Here the same function runs over the
same files already in memory, in a pool of the same size, nothing else: no reads, no writes, no
fsync, no state. Its speed is the most the catch-up can reach with these checks; its per-step time
(one thread, cProfile) says where a file's cost goes."""

from __future__ import annotations

import cProfile
import pstats
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.common import Spread
from services.merger.batchfile import parse_batch

#: The merge engine's read-ahead pool (services/merger/merge.py).
READ_THREADS = 2
#: parse_batch's callees as the report names them (what each step checks or computes). polars'
#: read_csv is called through its deprecation decorator, profiled as `wrapper`.
STEP_NAMES = {
    "wrapper": "read_csv (types, the checked columns)",
    "read_csv": "read_csv (types, the checked columns)",
    "to_datetime": "eventTime parse",
    "_cut_kafka_prefixes": "cutting the Kafka fields",
    "_cut_kafka_fields": "cutting the Kafka fields",
    "_check_field_counts": "field counts",
    "partition_bounds": "offset bounds",
}


@dataclass(frozen=True)
class ChecksBound:
    rows_per_s: Spread  # parse_batch alone, READ_THREADS threads
    steps: dict[str, float]  # share of parse_batch's time per step (one thread)

    def text(self, catchup_rows_per_s: float, tail_rows_per_s: float) -> str:
        bound = self.rows_per_s.median
        steps = ", ".join(f"{name} {share:.0%}" for name, share in self.steps.items())
        return (
            f"bound from the row checks alone (parse_batch over the same files in memory, {READ_THREADS} threads as "
            f"the merger's read-ahead, nothing else): {bound:,.0f} rows/s = {bound / tail_rows_per_s:.2f} of tail; "
            f"the catch-up reaches {catchup_rows_per_s / bound:.2f} of that bound. parse_batch's time per step "
            f"(one thread, cProfile): {steps}"
        )


def checks_bound(parts: Path, reps: int) -> ChecksBound:
    """parse_batch over every file of `parts`: rows/s in the pool after one untimed pass, `reps`
    timed passes; then one pass in one thread under cProfile for the step shares."""
    raws = [p.read_bytes() for p in sorted(parts.iterdir()) if p.suffix == ".csv"]
    rows = sum(raw.count(b"\n") - 1 for raw in raws)
    speeds: list[float] = []
    with ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(parse_batch, raws))
        for _ in range(reps):
            t0 = time.perf_counter()
            list(pool.map(parse_batch, raws))
            speeds.append(rows / (time.perf_counter() - t0))
    prof = cProfile.Profile()
    for raw in raws:
        prof.runcall(parse_batch, raw)
    return ChecksBound(Spread.of(speeds), step_shares(pstats.Stats(prof)))


def step_shares(stats: pstats.Stats) -> dict[str, float]:
    """Share of parse_batch's cumulative time spent in each of its named callees (and the rest)."""
    table = stats.stats  # type: ignore[attr-defined]
    top = next((k for k in table if k[2] == "parse_batch"), None)
    if top is None:
        return {}
    total = max(table[top][3], 1e-9)
    shares: dict[str, float] = {}
    for key, (*_, callers) in table.items():
        name = STEP_NAMES.get(key[2])
        if name is not None and top in callers:
            shares[name] = shares.get(name, 0.0) + callers[top][3] / total
    shares["the rest (UTF-8, nulls, header)"] = max(0.0, 1.0 - sum(shares.values()))
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))
