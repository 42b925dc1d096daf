"""`devicestream verify --run <id>`: check the pipeline against what a generator run injected.

The run's ledger (contract/ledger.py) lists each injected record with its partition and Kafka
offset. The check:

- the ledger is complete (an `end` line) and its counts agree with its lines,
- each malformed record is in the Spark job's rejects with the reason its kind must get,
- each late or skewed event is merged, every reading of it, with the eventTime it was sent with,
- each re-sent event's content (its eventId) is merged exactly once per time it was sent: under
  the original eventOffset and each re-send's, each time with all its readings.

Only the run's own rows are counted: those whose eventOffset lies in the run's range (the ledger's
first and last eventOffset; each eventOffset belongs to one run). Another run of the same seed makes
the same eventIds under other eventOffsets, and is not this run's business. An original made
before a restart (a run continuing with first_index) lies before the range: it must be merged
under some eventOffset outside it.

Exit 0 only when every problem count is zero; a tampered ledger (an altered time, reason, offset or
count) disagrees with what the pipeline did and fails the check."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import polars as pl

from contract.ledger import FAULT_KINDS, Ledger, LedgerError, ledger_path, read_ledger
from contract.verify_report import RunReport
from devicestream.merged_files import merged_files
from devicestream.verify import _rejects, merged_rejects_of


def _merged(merged_csv: Path) -> pl.DataFrame:
    merged = merged_files(merged_csv).scan_text()  # (merged.csv, or its retained segments)
    return merged.select(pl.col(c).fill_null("") for c in ("eventId", "eventOffset", "eventTime")).collect()


def own_rows(ledger: Ledger, merged: pl.DataFrame) -> pl.DataFrame:
    """The rows of merged.csv that are the run's: eventOffset in its range (all rows for a ledger
    written before ranges were)."""
    span = ledger.event_offsets()
    if span is None:
        return merged
    first, last = span
    off = pl.col("eventOffset").cast(pl.Int64, strict=False)
    inside = off >= first if last is None else off.is_between(first, last)
    return merged.filter(inside.fill_null(False))


def check_run(ledger: Ledger, merged: pl.DataFrame, rejects: pl.DataFrame, examples: int = 5) -> RunReport:
    """Pure: the ledger against merged.csv's (eventId, eventOffset, eventTime) and the rejects."""
    everything, merged = merged, own_rows(ledger, merged)
    ranged = ledger.event_offsets() is not None
    counted = Counter(f.kind for f in ledger.faults)
    report = RunReport(run_id=ledger.run.run_id, faults={k: counted.get(k, 0) for k in FAULT_KINDS})
    p, ex = report.problems, report.examples

    def note(name: str, rows: list[dict]) -> None:
        p[name] += len(rows)
        if rows:
            ex[name] = rows[:examples]

    if ledger.end is None:
        p["ledger_incomplete"] = 1
    elif {k: v for k, v in ledger.end.faults.items() if v} != {k: v for k, v in counted.items() if v}:
        note("ledger_counts_disagree", [{"end_line": ledger.end.faults, "lines": dict(counted)}])

    invalid = [f for f in ledger.faults if f.kind == "invalid"]
    got = {(r["partition"], r["offset"]): r["reason"] for r in rejects.iter_rows(named=True)}
    note("invalid_not_rejected", [f.model_dump() for f in invalid if (f.partition, f.offset) not in got])
    note(
        "invalid_wrong_reason",
        [
            {**f.model_dump(), "reason": got[(f.partition, f.offset)]}
            for f in invalid
            if (f.partition, f.offset) in got and got[(f.partition, f.offset)] != f.expected_reason
        ],
    )

    rows = merged.group_by("eventOffset").agg(pl.len().alias("n"), pl.col("eventTime").unique().alias("times"))
    by_offset = {r["eventOffset"]: r for r in rows.iter_rows(named=True)}
    timed = [f for f in ledger.faults if f.kind in ("late", "skewed")]
    not_merged, wrong_time = [], []
    for f in timed:
        r = by_offset.get(str(f.event_offset))
        if r is None or r["n"] != f.readings:
            not_merged.append({**f.model_dump(), "rows_merged": 0 if r is None else r["n"]})
        elif r["times"] != [f.event_time]:
            wrong_time.append({**f.model_dump(), "merged_event_time": r["times"]})
    note("timed_not_merged", not_merged)
    note("timed_wrong_event_time", wrong_time)

    resent = [f for f in ledger.faults if f.kind == "resend"]
    sends: dict[str, set[str]] = {}
    originals: dict[str, str | None] = {}
    readings: dict[str, int] = {}
    for f in resent:
        assert f.event_id is not None
        sends.setdefault(f.event_id, set()).add(str(f.event_offset))
        originals[f.event_id] = None if f.original_event_offset is None else str(f.original_event_offset)
        readings[f.event_id] = f.readings or 0
    if sends:
        found = (
            merged.filter(pl.col("eventId").is_in(list(sends)))
            .group_by("eventId")
            .agg(pl.len().alias("n"), pl.col("eventOffset").unique().alias("offsets"))
        )
        seen = {r["eventId"]: r for r in found.iter_rows(named=True)}
        # eventIds merged outside the run's range too (an original made before a restart)
        elsewhere = set(
            everything.filter(pl.col("eventId").is_in(list(sends)))
            .join(merged.select("eventOffset"), on="eventOffset", how="anti")["eventId"]
            .to_list()
        )
        wrong = []
        for event_id, offsets in sorted(sends.items()):
            r = seen.get(event_id)
            merged_offsets = set(r["offsets"]) if r else set()
            n = r["n"] if r else 0
            original = originals[event_id]
            # the original and each re-send, once each (an original from before a restart: any one offset)
            if original is not None:
                right = merged_offsets == offsets | {original} and n == readings[event_id] * (len(offsets) + 1)
            elif ranged:  # the original is before the run's range: once there, the re-sends in it
                right = merged_offsets == offsets and event_id in elsewhere and n == readings[event_id] * len(offsets)
            else:
                right = offsets <= merged_offsets and len(merged_offsets) == len(offsets) + 1
                right = right and n == readings[event_id] * (len(offsets) + 1)
            if not right:
                wrong.append(
                    {
                        "event_id": event_id,
                        "original": original,
                        "resent_as": sorted(offsets),
                        "merged_as": sorted(merged_offsets),
                        "rows": n,
                        "readings": readings[event_id],
                    }
                )
        note("resent_wrong_count", wrong)
    return report


def verify_run(
    ledger_file: Path, merged_csv: Path, rejects_dir: Path, *, wait_s: float = 0.0, interval_s: float = 1.0
) -> RunReport:
    """Read the ledger, then check; with `wait_s`, check again until clean or the deadline (the
    pipeline may still be draining the run)."""
    ledger = read_ledger(ledger_file)
    end = time.monotonic() + wait_s
    while True:
        report = check_run(ledger, _merged(merged_csv), _rejects(rejects_dir, merged_rejects_of(merged_csv)).collect())
        if report.ok or time.monotonic() >= end:
            return report
        time.sleep(interval_s)


def format_run_report(report: RunReport) -> str:
    lines = [f"verify --run {report.run_id}: {'OK' if report.ok else 'PROBLEMS FOUND'}"]
    lines += [f"  injected {k:<22} {v}" for k, v in report.faults.items()]
    lines += [f"  {k:<31} {v}{'  <-- ' if v else ''}" for k, v in report.problems.items()]
    lines += [f"  e.g. {k}: {orjson.dumps(v[:3]).decode()}" for k, v in report.examples.items()]
    return "\n".join(lines)


def cli_verify_run(
    runs_dir: Path, run_id: str, merged_csv: Path, rejects_dir: Path, wait_s: float, as_json: bool
) -> tuple[int, str]:
    """The `verify --run` command's exit code and text: 0 clean, 1 problems found, 2 no usable ledger."""
    try:
        report = verify_run(ledger_path(runs_dir, run_id), merged_csv, rejects_dir, wait_s=wait_s)
    except LedgerError as e:
        return 2, f"devicestream verify --run: {e}"
    text = report.to_json() if as_json else format_run_report(report)
    return (0 if report.ok else 1), text
