"""GET /merger/status: the merger's progress, aggregated by the gateway's /status (docs/DESIGN.md,
"Status documents"). The merger builds it (services/merger/watcher.py) and declares it as the
route's response; the gateway, the bench and the tests parse it with this model.

Every field has a default, so a reader parses a document without the newest fields; an undeclared
field is refused (extra="forbid"): the merger builds this model, and a key no model declares would
reach no reader, so it is a mistake to surface rather than carry."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field


class Freshness(BaseModel):
    """Seconds from an event's eventTime to its merge: the last one, and quantiles over a window."""

    model_config = ConfigDict(extra="forbid")

    last_s: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None


class QuarantinedBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    reason: str
    at: float


#: The kinds of SourceEvent (the merger exports a count of each from its start, 0 included).
SOURCE_EVENT_KINDS: Final = (
    "topic_recreated",
    "offsets_skipped",
    "offsets_backwards",
    "offsets_given_up",
    "topic_id_unknown",
    "state_rebuilt",
)


class SourceEvent(BaseModel):
    """topic_recreated, offsets_skipped, offsets_backwards, offsets_given_up (more gaps on a partition
    than the merger tracks), topic_id_unknown (a batch held: its manifest has no topic id) or
    state_rebuilt (README: Guarantees). Counted in the merger's merger_source_events_total{kind}."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    at: float
    detail: str
    lineage: str = ""
    batch_id: int | None = None


class WriteBlocked(BaseModel):
    """The merge is paused because a write in the merger's folder failed: `condition` is "disk full"
    (ENOSPC), "quota exceeded" (EDQUOT) or "I/O error" (EIO, and any other error). Nothing was
    lost: the commit was not written (or, at `step` "state", it is in the journal) and no batch file
    was deleted; the merger retries with a backoff and resumes by itself once the write succeeds."""

    model_config = ConfigDict(extra="forbid")

    condition: str
    #: The folder that is full (the failed file's), and the file.
    folder: str
    path: str
    #: Where in the commit: "rows" (merged.csv), "rejects" (rejects.csv), "journal", "state"
    #: (state.json), "quarantine", or "start" (loading the state).
    step: str
    error: str
    errno: int | None = None
    #: When the first of these failures happened (epoch s), failed attempts since, next retry in.
    since: float
    attempts: int = 1
    retry_in_s: float | None = None


class MergerStatus(BaseModel):
    """The fields the gateway aggregates (docs/DESIGN.md), plus last_error and the exactly-once keys:
        the checkpoint lineage followed, the topic (and Kafka's topic id), the next offset to merge per
        partition, rows dropped as already merged, the source events an operator must know about, and a
    write that fails (`write_blocked`: disk full, with the folder)."""

    model_config = ConfigDict(extra="forbid")

    batches_merged: int = 0
    last_batch_id: int | None = None
    rows_merged: int = 0
    #: Bytes GET /merged.csv serves now (the retained segments: one header line, their data lines).
    file_size: int = 0
    empty_batches: int = 0
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)
    newest_batch_id: int | None = None
    lag_batches: int = 0
    waiting_for_batch: int | None = None
    waiting_since: float | None = None
    last_merge_at: float | None = None
    freshness: Freshness = Field(default_factory=Freshness)
    last_error: str | None = None
    lineage: str = ""
    topic: str | None = None
    topic_id: str | None = None
    merged_offsets: dict[str, int] = Field(default_factory=dict)
    rows_skipped: int = 0
    events: list[SourceEvent] = Field(default_factory=list)
    #: Set while a write fails (disk full...): the merge is paused and retried; None otherwise.
    write_blocked: WriteBlocked | None = None
    #: merged.csv in segments (contract.segments): the retained ones (1 when segments are off), and
    #: what retention removed: rows no longer in merged.csv, reported as retired (never missing).
    segments: int = 1
    segments_retired: int = 0
    rows_retired: int = 0
    bytes_retired: int = 0
