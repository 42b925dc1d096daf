"""What a commit and a pass of the merge engine did (for metrics, freshness and segment bounds)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from contract.csv import LEGACY_LINEAGE
from contract.merger_status import QuarantinedBatch, SourceEvent
from services.merger.plan import MergePlan


@dataclass
class CommitResult:
    """What one commit did (for metrics and freshness)."""

    batch_ids: list[int] = field(default_factory=list)
    merged: int = 0
    rows: int = 0
    empty: int = 0
    quarantined: list[QuarantinedBatch] = field(default_factory=list)
    appended_bytes: int = 0
    committed_at: float = 0.0
    duration_s: float = 0.0
    #: Per merged batch: eventTime of its rows, epoch microseconds.
    event_times_us: list[pl.Series] = field(default_factory=list)
    #: The lineage of batch_ids; rows dropped because their Kafka record was already merged.
    lineage: str = LEGACY_LINEAGE
    rows_skipped: int = 0
    events: list[SourceEvent] = field(default_factory=list)
    #: Reject lines appended to rejects.csv (and their bytes), and those left out (already merged).
    rejects: int = 0
    rejects_bytes: int = 0
    rejects_skipped: int = 0
    #: Per partition, the lowest and highest offset of the merged batches' records, and the lowest
    #: and highest eventTime of their rows (when event_times_us holds a sample only).
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    event_time_bounds: tuple[int, int] | None = None


@dataclass(frozen=True)
class PassResult:
    plan: MergePlan
    stale_removed: int
    files_present: int
    #: The lineage the plan is about.
    lineage: str = LEGACY_LINEAGE


def time_bounds(result: CommitResult) -> tuple[int, int] | None:
    """The lowest and highest eventTime of the rows `result` appended (epoch microseconds)."""
    if result.event_time_bounds is not None:
        return result.event_time_bounds
    lows = [t.min() for t in result.event_times_us if t.len() and t.null_count() < t.len()]
    highs = [t.max() for t in result.event_times_us if t.len() and t.null_count() < t.len()]
    return (int(min(lows)), int(max(highs))) if lows else None  # type: ignore[call-overload]
