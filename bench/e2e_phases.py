"""Where an end-to-end run's freshness goes: the Spark job's micro-batches (its event log and log) and
each row's path from its eventTime to the bench seeing it in merged.csv, cut into phases.

A row's phases (per row, so their means add up to the mean freshness):
- wait: from its eventTime to the start of the micro-batch that read it (the generator's linger and
  Kafka's ack, then waiting behind the running micro-batch and for the trigger);
- spark: that micro-batch, from its start to its rows file committed (the sink's `batch committed`
  log line, right after the commit: the offset log, planning, the sink's Spark job and commit);
- pickup: from the rows file committed to the merger starting the commit that merges it (the file
  watcher, the merger's planning);
- merge: from there until the bench saw the row in merged.csv (the merger reads and checks the file,
  appends, fdatasync, state; then the bench's 20 ms polling).
Sources: the Spark event log (QueryProgressEvent: batchId, timestamp, durationMs), the job's log
(`batch committed`, its time to the millisecond), the merger's
journal.jsonl (one line per commit: rows_merged, last_batch_id, last_merge_at, the commit's start)
and the rows the bench saw (MergedTail.kept: when, the index of the chunk's first row)."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from pathlib import Path
from typing import Any

import cramjam
import numpy as np
import orjson

from services.merger.errors import StateCorruptError
from services.merger.state import MergerState

#: StreamingQueryProgress.durationMs phases, in the order a micro-batch runs them.
BATCH_PHASES = ("latestOffset", "walCommit", "queryPlanning", "getBatch", "addBatch", "commitOffsets")
ROW_PHASES = ("wait", "spark", "pickup", "merge")


def progress_events(events_dir: Path) -> list[dict[str, Any]]:
    """Every QueryProgressEvent's progress in the event logs below `events_dir`, with `start_s`
    (epoch seconds) added."""
    out = []
    for path in sorted(events_dir.rglob("events_*")):
        raw = path.read_bytes()
        if path.suffix == ".zstd":
            raw = bytes(cramjam.zstd.decompress(raw))
        for line in raw.splitlines():
            if b"QueryProgressEvent" in line[:200]:
                p = orjson.loads(line)["progress"]
                p["start_s"] = dt.datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp()
                out.append(p)
    return out


def batch_phases(progress: list[dict[str, Any]], t_from: float, t_to: float, trigger: float) -> str:
    """Where a micro-batch's time goes in the window (epoch seconds): the median of each durationMs phase."""
    progress = [p for p in progress if t_from <= p["start_s"] <= t_to]
    if not progress:
        return "Spark event log: no micro-batch in the measured window"
    median = statistics.median
    phases = {k: median([p["durationMs"].get(k, 0) for p in progress]) for k in BATCH_PHASES}
    total = median([p["durationMs"].get("triggerExecution", 0) for p in progress])
    rows = median([sum(s["numInputRows"] for s in p["sources"]) for p in progress])
    shown = ", ".join(f"{k} {v:,.0f}" for k, v in phases.items())
    return (
        f"Spark micro-batches in the measured window (event log): {len(progress)}, median {rows:,.0f} records, "
        f"triggerExecution {total:,.0f} ms = {shown} ms (addBatch is the sink: one Spark job that classifies, "
        f"writes the rows file and takes the counts, then the commit); a micro-batch starts every {trigger:g} s "
        "or, when one takes longer, as soon as it ends: a record waits for the running batch, then its own"
    )


def spark_batches(log: Path) -> str:
    """The Spark job's committed micro-batches (from its log): how long each took."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no Spark log)"
    found = re.findall(
        r"batch committed batch_id=(\d+) .*?input_rows=(\d+).*?duration_ms=(\d+) prepare_ms=(\d+) spark_ms=(\d+) "
        r"commit_ms=(\d+)",
        text,
    )
    if not found:
        return "Spark log: no committed batch"
    durs = sorted(int(f[2]) for f in found)
    shown = ", ".join(f"#{f[0]}: {int(f[1]):,} records in {int(f[2]):,} ms" for f in found[:6])
    phases = ", ".join(
        f"{name} {statistics.median(int(f[i]) for f in found):,.0f}"
        for i, name in ((3, "before the Spark job"), (4, "Spark job (rows file and counts)"), (5, "commit"))
    )
    return (
        f"Spark sink, every batch of the stage: {len(found)}, duration median {durs[len(durs) // 2]:,} ms, max "
        f"{durs[-1]:,} ms; median {phases} ms ({shown}{', ...' if len(found) > 6 else ''})"
    )


def committed_at(logs: Path) -> dict[int, float]:
    """When the sink committed each batch (epoch s): the time of its `batch committed` log line in
    logs/spark.log and its rotated files (logging's asctime, local time, milliseconds)."""
    found: dict[int, float] = {}
    line = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*?batch committed batch_id=(\d+) ", re.M)
    for path in logs.glob("spark.log*"):
        for m in line.finditer(path.read_bytes()):
            t = time.mktime(time.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            found[int(m.group(3))] = t
    return found


def journal_commits(journal: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The merger's commits that merged rows, in order: (rows merged after it, its first and last
    batch id, when it started, epoch s)."""
    cum, first, last, at = [], [], [], []
    prev_rows, prev_last = 0, -1
    for line in journal.read_bytes().splitlines():
        try:  # a journal line is the merger's state without its lists (services.merger.state)
            doc = MergerState.from_json(orjson.loads(line))
        except (ValueError, StateCorruptError):  # a torn last line
            continue
        rows, last_id = doc.rows_merged, doc.last_batch_id
        if rows > prev_rows and last_id is not None and doc.last_merge_at is not None:
            cum.append(rows)
            first.append(prev_last + 1)
            last.append(int(last_id))
            at.append(float(doc.last_merge_at))
        prev_rows = rows
        prev_last = int(last_id) if last_id is not None else prev_last
    return np.array(cum), np.array(first), np.array(last), np.array(at)


def row_phases(
    kept: list[tuple[float, int, np.ndarray]],
    progress: list[dict[str, Any]],
    committed: dict[int, float],
    journal: Path,
    t_from: float,
    t_to: float,
) -> dict[str, Any]:
    """Each phase's mean and median over the rows seen in [t_from, t_to) (epoch s), and its mean over
    the slowest 1% of them (module docstring). Empty when the sources do not cover the window."""
    chunks = [(v, i0, f) for v, i0, f in kept if t_from <= v < t_to]
    if not chunks or not journal.exists():
        return {}
    cum, first, last, at = journal_commits(journal)
    start = {int(p["batchId"]): p["start_s"] for p in progress}
    seen = np.concatenate([np.full(len(f), v) for v, _, f in chunks])
    fresh = np.concatenate([f for _, _, f in chunks])
    index = np.concatenate([np.arange(i0, i0 + len(f)) for _, i0, f in chunks])
    commit = np.searchsorted(cum, index, side="right")
    ok = commit < len(cum)
    batch = np.where(ok, last[np.minimum(commit, len(cum) - 1)], -1)
    known = ok & np.array([b in start and b in committed for b in batch])
    if not known.any():
        return {}
    seen, fresh, commit, batch = seen[known], fresh[known], commit[known], batch[known]
    b_start = np.array([start[b] for b in batch])
    b_ready = np.array([committed[b] for b in batch])
    c_at = at[commit]
    parts = {
        "wait": b_start - (seen - fresh),
        "spark": b_ready - b_start,
        "pickup": c_at - b_ready,
        "merge": seen - c_at,
    }
    slow = fresh >= np.quantile(fresh, 0.99)
    multi = float(np.mean(first[commit] != last[commit]))
    return {
        "rows": int(known.sum()),
        "rows_unmatched": int((~known).sum()),
        "freshness_mean_s": float(fresh.mean()),
        "mean_s": {k: float(v.mean()) for k, v in parts.items()},
        "median_s": {k: float(np.median(v)) for k, v in parts.items()},
        "slowest_1pct_mean_s": {k: float(v[slow].mean()) for k, v in parts.items()},
        "rows_in_multi_batch_commits": multi,
    }


def row_phases_text(rate: float, ph: dict[str, Any]) -> str:
    if not ph:
        return f"phases @ {rate:,.0f}/s: not available (no rows matched to a micro-batch and a merger commit)"

    def ms(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {d[k] * 1000:,.0f}" for k in ROW_PHASES)

    return (
        f"phases @ {rate:,.0f}/s, per row ({ph['rows']:,} rows; mean freshness {ph['freshness_mean_s'] * 1000:,.0f} "
        f"ms): mean {ms(ph['mean_s'])} ms; median {ms(ph['median_s'])} ms; the slowest 1%: mean "
        f"{ms(ph['slowest_1pct_mean_s'])} ms (wait = eventTime to its micro-batch's start: generator linger, Kafka "
        "ack, the running micro-batch and the trigger; spark = the micro-batch until its rows file is committed; "
        "pickup = until the merger starts the commit (file watcher); merge = the merger's read, append, fdatasync "
        f"and the bench's 20 ms polling); {ph['rows_in_multi_batch_commits']:.0%} of the rows came in a commit of "
        "several batches (counted against the last)"
    )
