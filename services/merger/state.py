"""The merger's durable progress (state.json, and its journal) and the recovery of merged.csv on start.

Invariant: merged.csv's first `committed_size` bytes are exactly the header plus the data lines of
every merged batch up to `last_batch_id`, in order. Bytes past `committed_size` belong to an append that
was not committed (a crash or a disk-full error between the write and the state write) and are cut off.

Each commit appends one line to journal.jsonl beside merged.csv (the state without its quarantine and
event lists, with an increasing `commit_seq`) after merged.csv is fsynced and before state.json is
replaced: the journal line is the commit point. A line is complete only with its final newline: a
line cut short (a short write, a full disk, a crash in the middle of the write) is never read; it
is cut off on start (services.merger.journal), so the next line starts on a line of its own. On start the
newer of state.json and the journal's last complete line wins, so a deleted (or older) state.json
is rebuilt, merged offsets included, and no Kafka record is merged twice. The journal is cut back to
its last line once it grows past a bound.

Every write is checked (services.merger.merge): until state.json is written no batch file is
deleted, and a failed write (disk full) before the journal line leaves the old state, the uncommitted
tails being cut off (at once, or on start).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import ConfigDict, PlainSerializer, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from contract.csv import REJECT_HEADER, ROW_HEADER
from contract.files import atomic_write_json, read_json
from contract.merger_status import QuarantinedBatch, SourceEvent
from contract.segments import Segment, segment_file
from services.merger.errors import StateCorruptError

log = logging.getLogger(__name__)

HEADER_LINE = (ROW_HEADER + "\n").encode()
#: rejects.csv's header: the Spark job's reject files' one (their data lines are appended as written).
REJECTS_HEADER_LINE = (REJECT_HEADER + "\n").encode()
STATE_VERSION = 2
#: The state keeps the newest quarantine entries only, so it stays small over a long run.
MAX_QUARANTINE_ENTRIES = 1000
#: ... and the newest events (topic recreated, offsets skipped, state rebuilt).
MAX_EVENTS = 100
#: ... and the newest retired segments (what verify needs to tell retired rows from missing ones;
#: every journal line carries them: a few hundred bytes each).
MAX_RETIRED_SEGMENTS = 200
#: The keys every state.json and journal line has had since the first version (the others have
#: defaults: a file from before them loads).
REQUIRED_KEYS: Final = frozenset(
    {"generation", "last_batch_id", "committed_size", "batches_merged", "rows_merged", "empty_batches", "last_merge_at"}
)


def _partitions_json(by_partition: dict[int, Any]) -> dict[str, Any]:
    """Per-partition maps are written with the partitions as sorted string keys (JSON's only keys)."""
    return {str(p): by_partition[p] for p in sorted(by_partition)}


def _gaps_json(gaps: dict[int, tuple[tuple[int, int], ...]]) -> dict[str, list[list[int]]]:
    return {str(p): [[s, e] for s, e in gaps[p]] for p in sorted(gaps)}


#: Per Kafka partition, an offset; and per partition, ranges [start, end) of offsets.
Offsets = Annotated[dict[int, int], PlainSerializer(_partitions_json, when_used="json")]
Gaps = Annotated[dict[int, tuple[tuple[int, int], ...]], PlainSerializer(_gaps_json, when_used="json")]
#: The state files are the merger's own: a key no field declares is a mistake (or a newer merger's
#: file), refused rather than dropped.
_STRICT_KEYS = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_STRICT_KEYS)
class RetiredTopic:
    """The merged offsets of a topic identity merged before the current one (services.merger.merged_offsets)."""

    topic: str | None
    topic_id: str | None
    next_offsets: Offsets = field(default_factory=dict)
    offset_gaps: Gaps = field(default_factory=dict)


@dataclass(frozen=True, config=_STRICT_KEYS)
class MergerState:
    """The merger's progress: state.json is this document (with `version`), a journal line is it
    without the quarantine and event lists. Read and written through `STATE` (a TypeAdapter) only."""

    #: Changes whenever merged.csv is created anew: part of the download ETag.
    generation: str
    #: The last batch processed (merged, empty or quarantined); None before the first one.
    last_batch_id: int | None = None
    #: Bytes of merged.csv that are committed (header included).
    committed_size: int = 0
    #: Batches whose rows were appended (empty and quarantined batches are counted apart).
    batches_merged: int = 0
    rows_merged: int = 0
    empty_batches: int = 0
    quarantined: tuple[QuarantinedBatch, ...] = field(default_factory=tuple)
    #: Epoch seconds of the last commit that added rows (also the download's Last-Modified).
    last_merge_at: float | None = None
    #: Increases with every commit (the newer of state.json and the journal wins on start).
    commit_seq: int = 0
    #: The checkpoint lineage of last_batch_id ("" for legacy batch names without one).
    lineage: str = ""
    #: The topic merged and Kafka's id of it (None until a batch with a manifest said so).
    topic: str | None = None
    topic_id: str | None = None
    #: Per Kafka partition, the next offset to merge: every record below it is in merged.csv (or was
    #: rejected, or quarantined). A row of a record below it is never appended again.
    next_offsets: Offsets = field(default_factory=dict)
    #: Per partition, the ranges below next_offsets not merged yet (services.merger.merged_offsets).
    offset_gaps: Gaps = field(default_factory=dict)
    #: The merged offsets of the topic identities merged before this one (newest last).
    retired_topics: tuple[RetiredTopic, ...] = field(default_factory=tuple)
    #: Per partition, where the last batch of `lineage` ended (to tell a job going backwards).
    lineage_offsets: Offsets = field(default_factory=dict)
    #: Rows dropped because their Kafka record was already merged (a replay under a new lineage).
    rows_skipped: int = 0
    events: tuple[SourceEvent, ...] = field(default_factory=tuple)
    #: Every event ever recorded in this state, by kind (the newest are in `events`): committed with
    #: them, so merger_source_events_total counts each once, across restarts and failed commits.
    event_counts: dict[str, int] = field(default_factory=dict)
    #: Bytes of rejects.csv that are committed (header included; 0 before it exists), and the reject
    #: lines appended to it (those of records already merged are left out, as rows are).
    rejects_committed_size: int = 0
    rejects_merged: int = 0
    #: The segment being appended to (committed_size is its committed length), merged.csv unless
    #: segments are on (contract.segments); the closed ones retained, oldest first; the newest of
    #: those retention removed, and the totals of all of them.
    active: Segment = field(default_factory=lambda: first_segment(0))
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    retired: tuple[Segment, ...] = field(default_factory=tuple)
    rows_retired: int = 0
    bytes_retired: int = 0
    segments_retired: int = 0
    #: The file format (written, never read: the fields with defaults carry the older formats).
    version: int = STATE_VERSION

    @classmethod
    def fresh(cls) -> MergerState:
        return cls(generation=uuid.uuid4().hex[:16])

    @property
    def merged_size(self) -> int:
        """The end of the merged stream ever written (header line, then every segment's data lines,
        retired ones included): committed_size while there is one segment. Increases only."""
        return self.active.start + self.committed_size - len(HEADER_LINE)

    @property
    def retained(self) -> tuple[Segment, ...]:
        """The retained segments, oldest first, the active one last (its size and rows as committed)."""
        return (*self.segments, self.active)

    def to_json(self) -> dict[str, Any]:
        """state.json's document."""
        return STATE.dump_python(self, mode="json")

    def journal_json(self) -> dict[str, Any]:
        """The journal line: everything but the quarantine and event lists (kept small per commit)."""
        return STATE.dump_python(self, mode="json", exclude={"quarantined", "events"})

    @classmethod
    def from_json(cls, doc: object) -> MergerState:
        """A state.json document or a journal line, of this format or an older one (fields added
        since have defaults; a state from before segments has merged.csv as its one segment).
        Raises StateCorruptError naming what is missing or malformed."""
        if not isinstance(doc, dict):
            raise StateCorruptError(f"state is not a JSON object: {type(doc).__name__}")
        if missing := sorted(REQUIRED_KEYS - doc.keys()):
            raise StateCorruptError(f"state has a missing or malformed field: missing {', '.join(missing)}")
        older = {k: () for k in ("retired_topics", "segments", "retired") if k in doc and doc[k] is None}
        if not doc.get("active"):  # a state from before segments
            try:
                older["active"] = first_segment(int(doc["rows_merged"]), int(doc["committed_size"]))
            except (TypeError, ValueError) as e:
                raise StateCorruptError(f"state has a missing or malformed field: {e!r}") from e
        try:
            return STATE.validate_python({**doc, **older})
        except ValidationError as e:
            raise StateCorruptError(f"state has a missing or malformed field: {e}") from e

    def with_quarantined(self, entries: list[QuarantinedBatch]) -> MergerState:
        if not entries:
            return self
        return replace(self, quarantined=(*self.quarantined, *entries)[-MAX_QUARANTINE_ENTRIES:])

    def with_events(self, events: list[SourceEvent]) -> MergerState:
        if not events:
            return self
        counts = dict(self.event_counts)
        for e in events:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        return replace(self, events=(*self.events, *events)[-MAX_EVENTS:], event_counts=counts)


def quarantine_entries(quarantine_dir: Path) -> tuple[QuarantinedBatch, ...]:
    """The quarantine as the folder holds it (to rebuild the state's list), oldest first."""
    entries = []
    for reason_file in quarantine_dir.glob("*.reason.txt"):
        try:
            reason = reason_file.read_text(errors="replace").strip()
            at = reason_file.stat().st_mtime
        except OSError:
            continue
        entries.append(QuarantinedBatch(file=reason_file.name.removesuffix(".reason.txt"), reason=reason, at=at))
    return tuple(sorted(entries, key=lambda q: q.at)[-MAX_QUARANTINE_ENTRIES:])


def load_state(path: Path) -> MergerState | None:
    try:
        doc = read_json(path)
    except ValueError as e:  # orjson.JSONDecodeError; the file is only ever replaced atomically
        raise StateCorruptError(f"{path} is not valid JSON: {e}") from e
    return None if doc is None else MergerState.from_json(doc)


def save_state(path: Path, state: MergerState) -> None:
    """Atomically replace the state file (temp, fsync, rename, fsync folder). Raises OSError (disk
    full...) with state.json unchanged when the temp file could not be written, and no temp file left."""
    atomic_write_json(path, state.to_json())


def first_segment(rows: int, size: int = 0) -> Segment:
    """merged.csv as the first segment (a state from before segments: all its rows)."""
    return Segment(seq=0, file=segment_file(0), start=len(HEADER_LINE), size=size, rows=rows)


#: state.json and the journal's lines are read and written through this adapter only.
STATE: Final = TypeAdapter(MergerState)
