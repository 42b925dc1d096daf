"""Exactly once keyed by the source: per topic identity and Kafka partition, which offsets are merged
(pure logic, no I/O).

A keyed batch (contract.batches) says which offsets it covers and which topic (name and Kafka topic
id) they belong to; its rows carry their record's partition and offset. The merged offsets of a topic
identity are, per partition, a high-water mark `next_offsets[p]` (every record at or above it is not
merged) and the gaps below it (`offset_gaps[p]`: ranges skipped so far, because the batch that holds
them was merged after a later one, or never came). A record is merged iff it is below the mark and in
no gap. A row is appended only when its record is not merged, whatever batch id, lineage or order it
comes in; afterwards the batch's ranges are merged (the mark moves past them, the gaps they cover
close). So batches can be merged in any order and each record still exactly once: nothing waits for
a batch that may never come, and a batch is deletable exactly when it holds no record that is not
merged (`TopicOffsets.holds_unmerged`).

The merged offsets of the topic identities merged before the current one are kept (`retired`, the
newest few), so a leftover batch of an old topic is checked against its own topic, never against the
new one. What the source does that an operator must know about becomes a SourceEvent (README,
Guarantees):
- topic_recreated: a topic identity (name and id) never merged before: its offsets start afresh
  (merged.csv keeps the old topic's rows);
- offsets_skipped: a batch starts past the mark (records deleted by retention before the job read
  them, a new checkpoint that did not start from the earliest offset, or a batch file not merged yet):
  the range becomes a gap, merged if a batch holding it comes later;
- offsets_backwards: within one lineage a batch starts below where the previous one ended (Spark re-read
  a partition): rows already merged are dropped, the event says so;
- offsets_given_up: a partition has more than MAX_GAPS gaps: the oldest is no longer told apart from
  merged records (a batch holding them later is not merged; `verify` counts them missing).
An unknown topic id (None) never matches: the planner (services.merger.plan) holds such a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import polars as pl

from contract.batches import BatchManifest, OffsetRange
from contract.merger_status import SourceEvent
from services.merger.batchfile import ParsedBatch
from services.merger.state import MergerState, RetiredTopic

log = logging.getLogger(__name__)

#: Gaps kept per partition; past it the oldest are given up (an offsets_given_up event says so).
MAX_GAPS = 64
#: Topic identities whose merged offsets are kept after a newer one replaced them.
MAX_RETIRED = 8

Gaps = dict[int, list[tuple[int, int]]]


@dataclass
class TopicOffsets:
    """The merged offsets of one topic identity."""

    topic: str | None
    topic_id: str | None
    next_offsets: dict[int, int] = field(default_factory=dict)
    offset_gaps: Gaps = field(default_factory=dict)

    def copy(self) -> TopicOffsets:
        gaps = {p: list(g) for p, g in self.offset_gaps.items()}
        return replace(self, next_offsets=dict(self.next_offsets), offset_gaps=gaps)

    def matches(self, topic: str, topic_id: str | None) -> bool:
        """The same topic identity: name and a known id equal (an unknown id never matches)."""
        return topic_id is not None and (self.topic, self.topic_id) == (topic, topic_id)

    def holds_unmerged(self, partition: int, start: int | None, end: int) -> bool:
        """Whether records [start, end) of `partition` include one not merged (start None: unknown,
        taken as 0: whatever gap lies below `end` counts)."""
        low = 0 if start is None else start
        if end <= low:
            return False
        nxt = self.next_offsets.get(partition)
        if nxt is None or end > nxt:
            return True
        return any(s < end and low < e for s, e in self.offset_gaps.get(partition, ()))

    def unmerged(self, partition: int, offset: int) -> bool:
        """Whether the record at `offset` of `partition` is not merged."""
        return self.holds_unmerged(partition, offset, offset + 1)

    def batch_unmerged(self, offsets: Mapping[int, OffsetRange]) -> bool:
        """Whether a batch covering `offsets` may hold a record not merged (no ranges: it may)."""
        return not offsets or any(self.holds_unmerged(p, r.start, r.end) for p, r in offsets.items())

    def mark(self, partition: int, start: int | None, end: int) -> list[tuple[int, int]]:
        """Records [start, end) of `partition` are merged now (a batch past the mark opens the gap
        (mark, start) below it). Returns the gaps given up: the oldest, past MAX_GAPS, whose records
        are no longer told apart from merged ones (a batch holding them later is not merged)."""
        nxt = self.next_offsets.get(partition)
        low = nxt if start is None or nxt is None else start
        gaps = self.offset_gaps.get(partition, [])
        if nxt is not None and low is not None and low > nxt:
            gaps.append((nxt, low))
        if low is not None:
            gaps = [piece for s, e in gaps for piece in _minus((s, e), (low, end))]
        gaps = sorted(gaps)
        given_up, gaps = gaps[:-MAX_GAPS], gaps[-MAX_GAPS:]
        if gaps:
            self.offset_gaps[partition] = gaps
        else:
            self.offset_gaps.pop(partition, None)
        self.next_offsets[partition] = max(nxt or 0, end)
        return given_up

    def keep(self, parsed: ParsedBatch) -> pl.Series | None:
        """Which rows of a keyed batch to append (None: all of them)."""
        if parsed.kafka_partition is None or parsed.kafka_offset is None or not self.next_offsets:
            return None
        if all(low >= self.next_offsets.get(p, 0) for p, (low, _) in parsed.partition_bounds.items()):
            return None  # the usual case: every row is past what was merged
        parts, offsets = zip(*self.next_offsets.items(), strict=True)
        partition = parsed.kafka_partition.cast(pl.Int64)
        threshold = partition.replace_strict(list(parts), list(offsets), default=0, return_dtype=pl.Int64)
        keep = parsed.kafka_offset >= threshold
        for p, gaps in self.offset_gaps.items():
            for s, e in gaps:
                keep = keep | ((partition == p) & (parsed.kafka_offset >= s) & (parsed.kafka_offset < e))
        return keep


def _minus(gap: tuple[int, int], merged: tuple[int, int]) -> list[tuple[int, int]]:
    (s, e), (ms, me) = gap, merged
    if me <= s or e <= ms:
        return [gap]
    return [piece for piece in ((s, ms), (me, e)) if piece[0] < piece[1]]


def current_offsets(state: MergerState) -> TopicOffsets:
    gaps = {p: list(g) for p, g in state.offset_gaps.items()}
    return TopicOffsets(state.topic, state.topic_id, dict(state.next_offsets), gaps)


def retired_offsets(state: MergerState) -> list[TopicOffsets]:
    return [
        TopicOffsets(r.topic, r.topic_id, dict(r.next_offsets), {p: list(g) for p, g in r.offset_gaps.items()})
        for r in state.retired_topics
    ]


def offsets_of(state: MergerState, topic: str, topic_id: str | None) -> TopicOffsets | None:
    """The merged offsets of this topic identity (current or retired), None when never merged."""
    for offsets in (current_offsets(state), *retired_offsets(state)):
        if offsets.matches(topic, topic_id):
            return offsets
    return None


def to_retired(offsets: list[TopicOffsets]) -> tuple[RetiredTopic, ...]:
    return tuple(
        RetiredTopic(
            o.topic, o.topic_id, dict(sorted(o.next_offsets.items())), {p: tuple(g) for p, g in o.offset_gaps.items()}
        )
        for o in offsets[-MAX_RETIRED:]
    )


@dataclass
class OffsetCursor:
    """The merged position while a commit is being built (copied from, then into, MergerState)."""

    lineage: str
    current: TopicOffsets
    retired: list[TopicOffsets] = field(default_factory=list)
    #: Where the previous batch of `lineage` ended, per partition.
    lineage_offsets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, state: MergerState) -> OffsetCursor:
        return cls(state.lineage, current_offsets(state), retired_offsets(state), dict(state.lineage_offsets))

    def copy(self) -> OffsetCursor:
        return replace(
            self,
            current=self.current.copy(),
            retired=[r.copy() for r in self.retired],
            lineage_offsets=dict(self.lineage_offsets),
        )

    # (the fields MergerState keeps of the current topic identity)
    @property
    def topic(self) -> str | None:
        return self.current.topic

    @property
    def topic_id(self) -> str | None:
        return self.current.topic_id

    @property
    def next_offsets(self) -> dict[int, int]:
        return self.current.next_offsets

    def begin(self, lineage: str, manifest: BatchManifest | None, now: float) -> list[SourceEvent]:
        """Take a batch of `lineage` (with its manifest, None for a legacy batch): the events it shows.
        The planner never hands over a manifest without a topic id (see the module docstring)."""
        if lineage != self.lineage:
            self.lineage, self.lineage_offsets = lineage, {}
        if manifest is None:
            return []
        events: list[SourceEvent] = []

        def event(kind: str, detail: str) -> None:
            events.append(SourceEvent(kind=kind, at=now, detail=detail, lineage=lineage, batch_id=manifest.batch_id))
            log.warning(detail, extra={"event": kind, "lineage": lineage, "batch_id": manifest.batch_id})

        cur = self.current
        if cur.topic is None or (cur.topic == manifest.topic and cur.topic_id is None):
            # the first topic merged (or a state written before topic ids were checked: it adopts one)
            cur.topic, cur.topic_id = manifest.topic, manifest.topic_id
        elif not cur.matches(manifest.topic, manifest.topic_id):
            known = next((r for r in self.retired if r.matches(manifest.topic, manifest.topic_id)), None)
            if known is None:
                event(
                    "topic_recreated",
                    f"topic {manifest.topic!r} (id {manifest.topic_id}) replaces {cur.topic!r} (id {cur.topic_id}):"
                    f" its offsets start again; merged.csv keeps the rows merged so far "
                    f"(merged offsets were {cur.next_offsets})",
                )
                known = TopicOffsets(manifest.topic, manifest.topic_id)
            else:  # a leftover batch of a topic merged before: checked against that topic's offsets
                self.retired.remove(known)
                log.info(
                    "a batch of a topic merged before",
                    extra={"topic": manifest.topic, "topic_id": manifest.topic_id, "batch_id": manifest.batch_id},
                )
            self.retired = [*self.retired, cur][-MAX_RETIRED:]
            self.current, self.lineage_offsets = known, {}
        for p, r in sorted(manifest.offsets.items()):
            if r.start is None:
                continue
            nxt, previous_end = self.current.next_offsets.get(p), self.lineage_offsets.get(p)
            if nxt is not None and r.start > nxt:
                event(
                    "offsets_skipped",
                    f"partition {p}: offsets {nxt}..{r.start - 1} are not merged: deleted before the job read "
                    "them, the job started past them, or their batch file comes later (it is then merged)",
                )
            elif previous_end is not None and r.start < previous_end:
                event(
                    "offsets_backwards",
                    f"partition {p}: the job went back from offset {previous_end} to {r.start} within one "
                    f"checkpoint; rows of records already merged are not merged again",
                )
        return events

    def keep(self, parsed: ParsedBatch) -> pl.Series | None:
        return self.current.keep(parsed)

    def advance(
        self, manifest: BatchManifest | None, bounds: Mapping[int, tuple[int, int]], now: float
    ) -> list[SourceEvent]:
        """Mark what the batch covers as merged: its ranges, and (in any case) its rows' own offsets
        (`bounds`: lowest and highest per partition). Returns an offsets_given_up event per gap
        given up (TopicOffsets.mark)."""
        ranges: dict[int, tuple[int | None, int]] = {}
        if manifest is not None:
            ranges = {p: (r.start, r.end) for p, r in manifest.offsets.items()}
            self.lineage_offsets.update({p: r.end for p, r in manifest.offsets.items()})
        for p, (low, high) in bounds.items():
            start, end = ranges.get(p, (low, high + 1))
            ranges[p] = (low if start is None else min(start, low), max(end, high + 1))
        events = []
        for p, (start, end) in ranges.items():
            for s, e in self.current.mark(p, start, end):
                detail = (
                    f"partition {p}: offsets {s}..{e - 1} were never merged and are no longer tracked (more than "
                    f"{MAX_GAPS} gaps on the partition): a batch holding them from now on is not merged"
                )
                batch_id = None if manifest is None else manifest.batch_id
                events.append(
                    SourceEvent(kind="offsets_given_up", at=now, detail=detail, lineage=self.lineage, batch_id=batch_id)
                )
                log.error(detail, extra={"event": "offsets_given_up", "lineage": self.lineage, "batch_id": batch_id})
        return events

    def into(self, state: MergerState) -> MergerState:
        """`state` with this cursor's position."""
        cur = self.current
        return replace(
            state,
            lineage=self.lineage,
            topic=cur.topic,
            topic_id=cur.topic_id,
            next_offsets=dict(sorted(cur.next_offsets.items())),
            offset_gaps={p: tuple(g) for p, g in sorted(cur.offset_gaps.items())},
            retired_topics=to_retired(self.retired),
            lineage_offsets=dict(sorted(self.lineage_offsets.items())),
        )


def merge_bounds(into: dict[int, tuple[int, int]], bounds: Mapping[int, tuple[int, int]]) -> None:
    """Widen `into` (lowest, highest offset per partition) by `bounds` (a chunk's)."""
    for p, (low, high) in bounds.items():
        old = into.get(p)
        into[p] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
