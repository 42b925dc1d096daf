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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from contract.csv import REJECT_HEADER, ROW_HEADER
from contract.files import atomic_write_json, read_json
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


@dataclass(frozen=True)
class QuarantineEntry:
    file: str
    reason: str
    at: float


@dataclass(frozen=True)
class MergerEvent:
    """Something an operator must know about the source (documented in the README's Guarantees):
    kind is "topic_recreated", "offsets_skipped", "offsets_backwards", "topic_id_unknown" or
    "state_rebuilt"."""

    kind: str
    at: float
    detail: str
    lineage: str = ""
    batch_id: int | None = None


@dataclass(frozen=True)
class RetiredTopic:
    """The merged offsets of a topic identity merged before the current one (services.merger.offsets)."""

    topic: str | None
    topic_id: str | None
    next_offsets: dict[int, int] = field(default_factory=dict)
    offset_gaps: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "topic_id": self.topic_id,
            "next_offsets": _offsets_json(self.next_offsets),
            "offset_gaps": _gaps_json(self.offset_gaps),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RetiredTopic:
        return cls(
            None if doc.get("topic") is None else str(doc["topic"]),
            None if doc.get("topic_id") is None else str(doc["topic_id"]),
            _offsets_from(doc.get("next_offsets")),
            _gaps_from(doc.get("offset_gaps")),
        )


def _offsets_json(offsets: dict[int, int]) -> dict[str, int]:
    return {str(p): o for p, o in sorted(offsets.items())}


def _offsets_from(doc: Any) -> dict[int, int]:
    return {int(p): int(o) for p, o in (doc or {}).items()}


def _gaps_json(gaps: dict[int, tuple[tuple[int, int], ...]]) -> dict[str, list[list[int]]]:
    return {str(p): [[s, e] for s, e in g] for p, g in sorted(gaps.items())}


def _gaps_from(doc: Any) -> dict[int, tuple[tuple[int, int], ...]]:
    return {int(p): tuple((int(s), int(e)) for s, e in g) for p, g in (doc or {}).items()}


@dataclass(frozen=True)
class MergerState:
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
    quarantined: tuple[QuarantineEntry, ...] = field(default_factory=tuple)
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
    next_offsets: dict[int, int] = field(default_factory=dict)
    #: Per partition, the ranges below next_offsets not merged yet (services.merger.offsets).
    offset_gaps: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    #: The merged offsets of the topic identities merged before this one (newest last).
    retired_topics: tuple[RetiredTopic, ...] = field(default_factory=tuple)
    #: Per partition, where the last batch of `lineage` ended (to tell a job going backwards).
    lineage_offsets: dict[int, int] = field(default_factory=dict)
    #: Rows dropped because their Kafka record was already merged (a replay under a new lineage).
    rows_skipped: int = 0
    events: tuple[MergerEvent, ...] = field(default_factory=tuple)
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
        # (asdict would deep-copy every segment record, once per commit: they are dumped below instead)
        doc = asdict(replace(self, segments=(), retired=()))
        doc["next_offsets"] = _offsets_json(self.next_offsets)
        doc["lineage_offsets"] = _offsets_json(self.lineage_offsets)
        doc["offset_gaps"] = _gaps_json(self.offset_gaps)
        doc["retired_topics"] = [r.to_json() for r in self.retired_topics]
        doc["active"] = self.active.model_dump(mode="json")
        doc["segments"] = [g.model_dump(mode="json") for g in self.segments]
        doc["retired"] = [g.model_dump(mode="json") for g in self.retired]
        doc["version"] = STATE_VERSION
        return doc

    def journal_json(self) -> dict[str, Any]:
        """The journal line: everything but the quarantine and event lists (kept small per commit)."""
        doc = self.to_json()
        del doc["quarantined"], doc["events"]
        return doc

    @classmethod
    def from_json(cls, doc: object) -> MergerState:
        if not isinstance(doc, dict):
            raise StateCorruptError(f"state is not a JSON object: {type(doc).__name__}")
        try:
            return cls(
                generation=str(doc["generation"]),
                last_batch_id=None if doc["last_batch_id"] is None else int(doc["last_batch_id"]),
                committed_size=int(doc["committed_size"]),
                batches_merged=int(doc["batches_merged"]),
                rows_merged=int(doc["rows_merged"]),
                empty_batches=int(doc["empty_batches"]),
                quarantined=tuple(
                    QuarantineEntry(str(q["file"]), str(q["reason"]), float(q["at"]))
                    for q in doc.get("quarantined", [])
                ),
                last_merge_at=None if doc["last_merge_at"] is None else float(doc["last_merge_at"]),
                commit_seq=int(doc.get("commit_seq", 0)),
                lineage=str(doc.get("lineage", "")),
                topic=None if doc.get("topic") is None else str(doc["topic"]),
                topic_id=None if doc.get("topic_id") is None else str(doc["topic_id"]),
                next_offsets=_offsets_from(doc.get("next_offsets")),
                offset_gaps=_gaps_from(doc.get("offset_gaps")),
                retired_topics=tuple(RetiredTopic.from_json(r) for r in doc.get("retired_topics") or ()),
                lineage_offsets=_offsets_from(doc.get("lineage_offsets")),
                rows_skipped=int(doc.get("rows_skipped", 0)),
                rejects_committed_size=int(doc.get("rejects_committed_size", 0)),
                rejects_merged=int(doc.get("rejects_merged", 0)),
                active=Segment.model_validate(doc["active"])
                if doc.get("active")
                else first_segment(int(doc["rows_merged"]), int(doc["committed_size"])),
                segments=tuple(Segment.model_validate(g) for g in doc.get("segments") or ()),
                retired=tuple(Segment.model_validate(g) for g in doc.get("retired") or ()),
                rows_retired=int(doc.get("rows_retired", 0)),
                bytes_retired=int(doc.get("bytes_retired", 0)),
                segments_retired=int(doc.get("segments_retired", 0)),
                events=tuple(
                    MergerEvent(str(e["kind"]), float(e["at"]), str(e["detail"]), str(e["lineage"]), e["batch_id"])
                    for e in doc.get("events", [])
                ),
            )
        except (KeyError, TypeError, ValueError) as e:  # (pydantic's ValidationError is a ValueError)
            raise StateCorruptError(f"state has a missing or malformed field: {e!r}") from e

    def with_quarantined(self, entries: list[QuarantineEntry]) -> MergerState:
        if not entries:
            return self
        return replace(self, quarantined=(*self.quarantined, *entries)[-MAX_QUARANTINE_ENTRIES:])

    def with_events(self, events: list[MergerEvent]) -> MergerState:
        if not events:
            return self
        return replace(self, events=(*self.events, *events)[-MAX_EVENTS:])


def quarantine_entries(quarantine_dir: Path) -> tuple[QuarantineEntry, ...]:
    """The quarantine as the folder holds it (to rebuild the state's list), oldest first."""
    entries = []
    for reason_file in quarantine_dir.glob("*.reason.txt"):
        try:
            reason = reason_file.read_text(errors="replace").strip()
            at = reason_file.stat().st_mtime
        except OSError:
            continue
        entries.append(QuarantineEntry(reason_file.name.removesuffix(".reason.txt"), reason, at))
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
