"""Segments: the costs that must stay flat as merged.csv grows (issue #29). The merger's own code,
in-process (as bench.stage_merger): a history of N rows merged through MergeEngine.run_pass with
segments on (MERGER_SEGMENT_BYTES), closed segments compacted to Parquet with their CSV removed, the
device figures following every commit (DeviceTracker.catch_up); then, at a small and a large N, the
same three costs:

- append one batch: run_pass for one new batch file (commit, fdatasync, state, rollover when due);
- a one-segment query: the rows of the newest compacted segment's eventTime bounds (filters skip the
  other segments by their bounds and read that one's Parquet copy), as CSV;
- /devices: folding the appended batch into the figures and answering (catch_up + response).

Each is judged by its ratio, large over small (flat: <= FLAT_RATIO). The two sizes are measured
alternately, each repetition after the background compaction has settled."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Config, Figure, Spread, StageError, StageResult, Target
from bench.data import csv_rows, events_in
from bench.stage_merger import engine_for
from contract.csv import BATCH_ROW_HEADER, batch_file_name
from services.merger.device_tracker import DeviceTracker
from services.merger.merge import MergeEngine
from services.merger.query import build_query, run_query
from services.merger.query_api import query_sources


@dataclass(frozen=True)
class SegmentSizes:
    small_rows: int
    large_rows: int
    build_batch_rows: int  # rows per batch file while the history is built
    segment_bytes: int
    append_rows: int
    reps: int


FULL = SegmentSizes(1_000_000, 20_000_000, 100_000, 64 * 1024 * 1024, 5_000, 11)
QUICK = SegmentSizes(100_000, 1_000_000, 20_000, 2 * 1024 * 1024, 5_000, 7)
#: Flat: the large size costs at most this many times the small one.
FLAT_RATIO = 1.5
T0 = datetime(2026, 11, 28, tzinfo=UTC)
COMPACTION_DEADLINE_S = 900.0


def batch(rows: int, first_offset: int) -> bytes:
    """A batch file whose eventTimes follow the previous batch's (137 us per event, as bench.data)."""
    start = T0 + timedelta(microseconds=137 * (first_offset - 10_000))
    return BATCH_ROW_HEADER.encode() + b"\n" + csv_rows(rows, first_offset=first_offset, start=start, kafka=True)


@dataclass
class History:
    engine: MergeEngine
    tracker: DeviceTracker
    next_id: int = 0
    next_offset: int = 10_000

    def add(self, count: int, rows: int) -> None:
        rows_dir = self.engine.settings.rows_dir
        for _ in range(count):
            (rows_dir / batch_file_name(self.next_id)).write_bytes(batch(rows, self.next_offset))
            self.next_id += 1
            self.next_offset += events_in(rows)

    def compacted(self) -> bool:
        return all(g.parquet is not None for g in self.engine.state.segments)


def build(root: Path, rows: int, sizes: SegmentSizes) -> History:
    """A merger folder holding `rows` rows in segments, every closed one compacted, the device
    figures caught up."""
    engine = engine_for(
        root,
        segment_bytes=sizes.segment_bytes,
        max_group_bytes=sizes.segment_bytes // 4,  # (a segment holds at most segment_bytes plus one commit)
        keep_segment_csv=False,
    )
    settings = engine.settings
    tracker = DeviceTracker(
        settings.merged_csv,
        settings.devices_file,
        lambda: engine.state,
        window_s=300,
        max_devices=10_000,
        snapshot_interval_s=5,
    )
    h = History(engine, tracker)
    per_round = 20
    while engine.state.rows_merged < rows:
        left = (rows - engine.state.rows_merged) // sizes.build_batch_rows
        h.add(max(1, min(per_round, left)), sizes.build_batch_rows)
        engine.run_pass()
        tracker.catch_up(engine.state)
    settle(h)
    return h


def settle(h: History) -> None:
    """Wait until every closed segment is compacted (a pass adopts a finished compaction)."""
    deadline = time.monotonic() + COMPACTION_DEADLINE_S
    while not h.compacted():
        if time.monotonic() > deadline:
            raise StageError(f"segments not compacted within {COMPACTION_DEADLINE_S:.0f} s")
        time.sleep(0.1)
        h.engine.run_pass()


def measure_once(h: History, sizes: SegmentSizes, out: Path, times: dict[str, list[float]]) -> None:
    """One repetition of the three costs (milliseconds), added to `times`."""
    engine, tracker = h.engine, h.tracker
    settle(h)  # (a compaction running in the background would compete for the cores)
    h.add(1, sizes.append_rows)
    t0 = time.perf_counter()
    engine.run_pass()
    times["append"].append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    tracker.catch_up(engine.state)
    tracker.response(limit=100)
    times["devices"].append((time.perf_counter() - t0) * 1000)
    state = engine.state
    g = next((g for g in reversed(state.segments) if g.parquet is not None), None)  # (the newest compacted)
    if g is None or g.event_time_us is None:
        raise StageError("no compacted segment with eventTime bounds")
    low, high = (datetime.fromtimestamp(0, UTC) + timedelta(microseconds=t) for t in g.event_time_us)
    q = build_query(since=low, until=high + timedelta(microseconds=1))
    sources = query_sources(state, engine.settings.merger_dir, q)
    if len(sources) != 1 or sources[0][0].suffix != ".parquet":
        raise StageError(f"a one-segment query reads {sources}")
    t0 = time.perf_counter()
    run_query(sources, q, "csv", out)
    times["query"].append((time.perf_counter() - t0) * 1000)


def facts_of(h: History) -> dict[str, int]:
    state, merger_dir = h.engine.state, h.engine.settings.merger_dir
    return {
        "rows": state.rows_merged,
        "segments": len(state.retained),
        "closed_segment_rows": max(g.rows for g in state.segments),
        "csv_bytes": sum(g.size for g in state.retained),
        "parquet_bytes": sum((merger_dir / g.parquet).stat().st_size for g in state.segments if g.parquet),
    }


def run(cfg: Config, sizes: SegmentSizes | None = None) -> StageResult:
    sizes = sizes or (QUICK if cfg.quick else FULL)
    res = StageResult("segments")
    small, large = sizes.small_rows, sizes.large_rows
    at: dict[int, dict[str, list[float]]] = {n: {"append": [], "query": [], "devices": []} for n in (small, large)}
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        root = Path(tmp)
        histories = {n: build(root / str(n), n, sizes) for n in (small, large)}
        try:
            facts = {n: facts_of(h) for n, h in histories.items()}
            # Alternated, one repetition of each size after the other: a load that comes and goes on a
            # shared machine falls on both.
            for _ in range(sizes.reps):
                for n, h in histories.items():
                    measure_once(h, sizes, root / "answer.csv", at[n])
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            for h in histories.values():
                h.engine.close()
    names = {
        "append": "append one batch",
        "query": "one-segment query (CSV answer)",
        "devices": "/devices after one batch (catch_up + response)",
    }
    for key, name in names.items():
        res.figures.append(
            Figure(
                stage="segments",
                name=f"{name} at {large:,} rows",
                unit="ms",
                value=Spread.of(at[large][key]),
                baseline_name=f"the same at {small:,} rows",
                baseline=Spread.of(at[small][key]),
                target=Target("ratio", "<=", FLAT_RATIO, f"flat: large / small <= {FLAT_RATIO}"),
                sizes={"small": facts[small], "large": facts[large], "append_rows": sizes.append_rows},
                notes=[
                    "in-process MergeEngine.run_pass with segments on, closed segments compacted to Parquet "
                    f"and their CSV removed; segment {sizes.segment_bytes:,} bytes",
                    f"small and large measured alternately; load average (1, 5, 15 min) at the end: {load}",
                    *([f"quick mode: {small:,} and {large:,} rows instead of 1M and 20M"] if cfg.quick else []),
                ],
            )
        )
    return res
