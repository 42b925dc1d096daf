"""Merger: appending one batch to a large merged.csv, and catching up over many batch files.

Drives the merger's own code in-process: `services.merger.merge.MergeEngine.run_pass`, exactly
what the service's watcher runs in its worker thread for each wake-up (scan, plan, read and check
each file with polars, one pwrite + fdatasync, atomic state.json, delete the merged files).
Baselines in the same run, on the same files: the old approach (pandas reads every part and
rewrites the whole file) and `tail -q -n +2` concatenation (warm, alternated with the merger's
passes). The catch-up figure also reports the bound its row checks alone allow
(bench/merger_bound.py)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import Config, Figure, Spread, StageError, StageResult, Target, growth_figure
from bench.data import batch_file, events_in, write_batches
from bench.merger_bound import checks_bound
from bench.profiles import cprofile_call
from contract.csv import ROW_HEADER, batch_file_name
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings


@dataclass(frozen=True)
class MergerSizes:
    part_rows: int  # rows per batch file
    parts: int  # files in the catch-up (and parts of the pre-existing merged.csv)
    append_reps: int
    pandas_reps: int
    catchup_reps: int
    #: The catch-up is measured again over this many times the files (cost as work grows).
    grow_factor: int = 4
    grow_reps: int = 3

    @property
    def merged_rows(self) -> int:
        return self.part_rows * self.parts


FULL = MergerSizes(part_rows=5_000, parts=200, append_reps=20, pandas_reps=3, catchup_reps=3)
QUICK = MergerSizes(part_rows=5_000, parts=40, append_reps=10, pandas_reps=2, catchup_reps=3)
APPEND_TARGET_MS = 50.0
#: Issue #25: the catch-up at 0.8 of `tail`'s speed on the same files.
CATCHUP_RATIO_TARGET = 0.8


def engine_for(root: Path, **overrides: Any) -> MergeEngine:
    """The merge engine on `root` (rows/ in, merger/ out), with these settings changed."""
    settings = MergerSettings(
        data_dir=root,
        input_dir=root / "rows",
        output_dir=root / "merger",
        progress_file=root / "no-progress.json",
        kafka_bootstrap_servers="",
        **overrides,
    )
    return MergeEngine(settings)


def fresh_merge_dir(root: Path) -> None:
    for sub in ("rows", "merger"):
        shutil.rmtree(root / sub, ignore_errors=True)


def copy_parts(parts: Path, rows_dir: Path) -> None:
    rows_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(parts.iterdir()):
        shutil.copyfile(p, rows_dir / p.name)


def old_approach(parts: Path, out: Path) -> None:
    """The replaced merger: read every part with pandas, concatenate, rewrite merged.csv whole."""
    frames = [pd.read_csv(p) for p in sorted(parts.iterdir())]
    pd.concat(frames, ignore_index=True).to_csv(out, index=False)


def tail_concat(parts: Path, out: Path) -> None:
    files = sorted(str(p) for p in parts.iterdir())
    with open(out, "wb") as f:
        f.write(ROW_HEADER.encode() + b"\n")
        f.flush()
        res = subprocess.run(["tail", "-q", "-n", "+2", *files], stdout=f, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise StageError(f"tail failed: {res.stderr.decode()[-500:]}")


def catchup_once(
    root: Path, parts: Path, sizes: MergerSizes, cpu: list[float] | None = None
) -> tuple[float, MergeEngine]:
    """Seconds to merge all parts from scratch (the CPU seconds of the process, every thread, appended
    to `cpu`); the engine is left open on a merged.csv of sizes.merged_rows rows (the caller closes it)."""
    fresh_merge_dir(root)
    copy_parts(parts, root / "rows")
    engine = engine_for(root)
    t0, c0 = time.perf_counter(), time.process_time()
    engine.run_pass()
    took = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    if engine.state.rows_merged != sizes.merged_rows:
        engine.close()
        raise StageError(f"merger merged {engine.state.rows_merged} rows, expected {sizes.merged_rows}")
    return took, engine


def tail_once(parts: Path, out: Path) -> float:
    """Seconds `tail` takes to concatenate the parts; the output of a previous pass is removed
    before the clock starts (its blocks are not freed inside the timed run)."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    tail_concat(parts, out)
    return time.perf_counter() - t0


def measure_catchup(root: Path, parts: Path, sizes: MergerSizes) -> tuple[list[float], list[float], MergeEngine]:
    """Seconds per repetition of the merger's catch-up and of the `tail` baseline, alternated (a
    load that comes and goes on a shared machine falls on both), after one untimed pass of each
    (page cache, imports, polars' thread pool warm). The last engine is left open on a merged.csv
    of sizes.merged_rows rows."""
    _, warm = catchup_once(root, parts, sizes)
    warm.close()
    tail_once(parts, root / "tail.csv")
    times: list[float] = []
    tail_s: list[float] = []
    engine: MergeEngine | None = None
    for _ in range(sizes.catchup_reps):
        if engine is not None:
            engine.close()
        took, engine = catchup_once(root, parts, sizes)
        times.append(took)
        tail_s.append(tail_once(parts, root / "tail.csv"))
    assert engine is not None
    return times, tail_s, engine


def measure_appends(engine: MergeEngine, sizes: MergerSizes) -> list[float]:
    rows_dir = engine.settings.rows_dir
    next_id = (engine.state.last_batch_id or 0) + 1
    per_batch = events_in(sizes.part_rows)
    times: list[float] = []
    for i in range(sizes.append_reps):
        batch = batch_file(sizes.part_rows, first_offset=50_000_000 + i * per_batch)  # new records each time
        (rows_dir / batch_file_name(next_id + i)).write_bytes(batch)
        t0 = time.perf_counter()
        engine.run_pass()
        times.append((time.perf_counter() - t0) * 1000)
        if engine.state.last_batch_id != next_id + i:
            raise StageError(f"append of batch {next_id + i} was not merged (state {engine.state})")
    return times


def run(cfg: Config, sizes: MergerSizes | None = None) -> StageResult:
    sizes = sizes or (QUICK if cfg.quick else FULL)
    res = StageResult("merger")
    with tempfile.TemporaryDirectory(prefix="bench-merger-") as tmp:
        root = Path(tmp)
        parts = root / "parts"
        part_bytes = write_batches(parts, sizes.parts, sizes.part_rows)

        catchup_s, tail_s, engine = measure_catchup(root, parts, sizes)
        try:
            merged_size = engine.state.committed_size
            append_ms = measure_appends(engine, sizes)
            profile_note = None
            if Spread.of(append_ms).median > APPEND_TARGET_MS:
                nxt = (engine.state.last_batch_id or 0) + 1
                batch = batch_file(sizes.part_rows, first_offset=60_000_000)
                (engine.settings.rows_dir / batch_file_name(nxt)).write_bytes(batch)
                prof = cfg.profiles / "merger-append.prof"
                _, summary = cprofile_call(engine.run_pass, prof)
                profile_note = (str(prof), summary)
        finally:
            engine.close()

        grown = grown_catchup(root, parts, sizes)
        bound = checks_bound(parts, sizes.catchup_reps)
        # The old approach for one more batch: every part plus the new one, read and rewritten.
        (parts / batch_file_name(sizes.parts)).write_bytes(batch_file(sizes.part_rows, first_offset=50_000_000))
        pandas_ms = []
        for _ in range(sizes.pandas_reps):
            t0 = time.perf_counter()
            old_approach(parts, root / "pandas.csv")
            pandas_ms.append((time.perf_counter() - t0) * 1000)

    common = {
        "merged_rows": sizes.merged_rows,
        "merged_bytes": merged_size,
        "batch_rows": sizes.part_rows,
        "catchup_files": sizes.parts,
        "catchup_bytes": part_bytes,
    }
    quick_note = [f"quick mode: merged.csv of {sizes.merged_rows:,} rows instead of 1,000,000"] if cfg.quick else []
    how = "in-process MergeEngine.run_pass (the service's own merge code, durable: fdatasync + atomic state.json)"
    append = Figure(
        stage="merger",
        name="append one batch",
        unit="ms",
        value=Spread.of(append_ms),
        baseline_name="old approach: pandas reads every part, rewrites merged.csv",
        baseline=Spread.of(pandas_ms),
        ratio_inverted=True,
        target=Target("value", "<=", APPEND_TARGET_MS, f"<= {APPEND_TARGET_MS:.0f} ms; ratio = speed-up reported"),
        sizes={**common, "append_reps": sizes.append_reps, "baseline_reps": sizes.pandas_reps},
        notes=[how, *quick_note],
    )
    if profile_note:
        append.profile, summary = profile_note
        append.notes.append(summary)
    rows_per_s = [sizes.merged_rows / s for s in catchup_s]
    tail_rows_per_s = [sizes.merged_rows / s for s in tail_s]
    catchup = Figure(
        stage="merger",
        name="catch-up throughput",
        unit="rows/s",
        value=Spread.of(rows_per_s),
        baseline_name="tail -q -n +2 concatenation (no checks, no fsync)",
        baseline=Spread.of(tail_rows_per_s),
        target=Target("ratio", ">=", CATCHUP_RATIO_TARGET, f"ratio >= {CATCHUP_RATIO_TARGET}"),
        sizes={**common, "reps": sizes.catchup_reps},
        notes=[
            how,
            "after one untimed pass of each; merger and tail passes alternated; tail's output of the previous "
            "pass removed before its clock starts; every file in the page cache (written just before)",
            bound.text(Spread.of(rows_per_s).median, Spread.of(tail_rows_per_s).median),
            *quick_note,
        ],
        extra={
            "catchup_mb_per_s": round(part_bytes / Spread.of(catchup_s).median / 1e6, 1),
            "checks_bound_rows_per_s": round(bound.rows_per_s.median),
        },
    )
    if not catchup.met:
        catchup.profile, summary = profile_catchup(cfg, sizes)
        catchup.notes.append(summary)
    big = replace(sizes, parts=sizes.parts * sizes.grow_factor)
    growth = growth_figure(
        "merger",
        "catch-up (batch files merged from scratch)",
        sizes.merged_rows,
        [c / sizes.merged_rows * 1e6 for c in grown.cpu_small],
        big.merged_rows,
        [c / big.merged_rows * 1e6 for c in grown.cpu],
        [
            how,
            f"{sizes.parts:,} then {big.parts:,} files of {sizes.part_rows:,} rows; wall time per row "
            f"{Spread.of(catchup_s).median / sizes.merged_rows * 1e6:.2f} us at A, "
            f"{Spread.of(grown.seconds).median / big.merged_rows * 1e6:.2f} us at B; CPU = the process's, every "
            "thread; each repetition at B right after one at A (a load or a machine speed that varies falls on both)",
        ],
    )
    res.figures += [append, catchup, growth]
    return res


@dataclass(frozen=True)
class GrownCatchup:
    """The catch-up at the large size, each repetition right after one at the small size."""

    seconds: list[float]  # at the large size
    cpu: list[float]  # CPU seconds at the large size
    cpu_small: list[float]  # CPU seconds at the small size (sizes.parts files)


def grown_catchup(root: Path, parts: Path, sizes: MergerSizes) -> GrownCatchup:
    """The catch-up over sizes.grow_factor times the files, each repetition right after one over
    `parts` (sizes.parts files), so a load or a machine speed that comes and goes falls on both."""
    big = replace(sizes, parts=sizes.parts * sizes.grow_factor)
    grown = root / "parts-grown"
    write_batches(grown, big.parts, big.part_rows)
    times: list[float] = []
    cpu: list[float] = []
    cpu_small: list[float] = []
    _, warm = catchup_once(root, grown, big)  # (files in the page cache)
    warm.close()
    for _ in range(sizes.grow_reps):
        _, engine = catchup_once(root, parts, sizes, cpu_small)
        engine.close()
        took, engine = catchup_once(root, grown, big, cpu)
        engine.close()
        times.append(took)
    shutil.rmtree(grown, ignore_errors=True)
    return GrownCatchup(times, cpu, cpu_small)


def profile_catchup(cfg: Config, sizes: MergerSizes) -> tuple[str, str]:
    """One more catch-up under cProfile, for the report."""
    with tempfile.TemporaryDirectory(prefix="bench-merger-prof-") as tmp:
        root = Path(tmp)
        write_batches(root / "rows", sizes.parts, sizes.part_rows)
        engine = engine_for(root)
        try:
            prof = cfg.profiles / "merger-catchup.prof"
            _, summary = cprofile_call(engine.run_pass, prof)
        finally:
            engine.close()
    return str(prof), summary
