"""Exactly once keyed by the source: per Kafka partition, the next offset to merge (pure logic).

A keyed batch (contract.batches) says which offsets it covers and which topic (name and Kafka topic
id) they belong to; its rows carry their record's partition and offset. A row is appended only when
its offset is at or above the partition's next offset, whatever batch id or lineage it comes under;
afterwards the next offset moves past the batch's range. What the source does that an operator must
know about becomes a MergerEvent (see the README's Guarantees):
- topic_recreated: another topic id (or topic name) than the one merged so far: its offsets start
  again, so the merged offsets are forgotten (merged.csv keeps the old topic's rows);
- offsets_skipped: a batch starts past the next offset (records deleted by retention before the job
  read them, or a new checkpoint that did not start from the earliest offset);
- offsets_backwards: within one lineage a batch starts below the next offset (Spark re-read a
  partition from an earlier offset): rows already merged are dropped, the event says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import polars as pl

from contract.batches import BatchManifest
from services.merger.batchfile import ParsedBatch
from services.merger.state import MergerEvent, MergerState

log = logging.getLogger(__name__)


@dataclass
class OffsetCursor:
    """The merged position while a commit is being built (copied from, then into, MergerState)."""

    lineage: str
    topic: str | None
    topic_id: str | None
    next_offsets: dict[int, int] = field(default_factory=dict)
    #: Where the previous batch of `lineage` ended, per partition.
    lineage_offsets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, state: MergerState) -> OffsetCursor:
        return cls(state.lineage, state.topic, state.topic_id, dict(state.next_offsets), dict(state.lineage_offsets))

    def copy(self) -> OffsetCursor:
        return replace(self, next_offsets=dict(self.next_offsets), lineage_offsets=dict(self.lineage_offsets))

    def begin(self, lineage: str, manifest: BatchManifest | None, now: float) -> list[MergerEvent]:
        """Take a batch of `lineage` (with its manifest, None for a legacy batch): the events it shows."""
        if lineage != self.lineage:
            self.lineage, self.lineage_offsets = lineage, {}
        if manifest is None:
            return []
        events: list[MergerEvent] = []

        def event(kind: str, detail: str) -> None:
            events.append(MergerEvent(kind, now, detail, lineage, manifest.batch_id))
            log.warning(detail, extra={"event": kind, "lineage": lineage, "batch_id": manifest.batch_id})

        if self.topic is None:
            self.topic, self.topic_id = manifest.topic, manifest.topic_id
        elif manifest.topic != self.topic or (self.topic_id and manifest.topic_id not in (None, self.topic_id)):
            event(
                "topic_recreated",
                f"topic {manifest.topic!r} (id {manifest.topic_id}) replaces {self.topic!r} (id {self.topic_id}): "
                f"its offsets start again; merged.csv keeps the rows merged so far "
                f"(merged offsets were {self.next_offsets})",
            )
            self.topic, self.topic_id = manifest.topic, manifest.topic_id
            self.next_offsets, self.lineage_offsets = {}, {}
        elif self.topic_id is None:
            self.topic_id = manifest.topic_id
        for p, r in sorted(manifest.offsets.items()):
            if r.start is None:
                continue
            nxt, previous_end = self.next_offsets.get(p), self.lineage_offsets.get(p)
            if nxt is not None and r.start > nxt:
                event(
                    "offsets_skipped",
                    f"partition {p}: offsets {nxt}..{r.start - 1} never reached the merger "
                    "(deleted before the job read them, or the job started past them)",
                )
            elif previous_end is not None and r.start < previous_end:
                event(
                    "offsets_backwards",
                    f"partition {p}: the job went back from offset {previous_end} to {r.start} within one "
                    f"checkpoint; rows of offsets below {nxt} are not merged again",
                )
        return events

    def keep(self, parsed: ParsedBatch) -> pl.Series | None:
        """Which rows of a keyed batch to append (None: all of them)."""
        if parsed.kafka_partition is None or parsed.kafka_offset is None or not self.next_offsets:
            return None
        if all(low >= self.next_offsets.get(p, 0) for p, (low, _) in parsed.partition_bounds.items()):
            return None  # the usual case: every row is past what was merged
        parts, offsets = zip(*self.next_offsets.items(), strict=True)
        threshold = parsed.kafka_partition.cast(pl.Int64).replace_strict(
            list(parts), list(offsets), default=0, return_dtype=pl.Int64
        )
        return parsed.kafka_offset >= threshold

    def advance(self, manifest: BatchManifest | None, parsed: ParsedBatch | None) -> None:
        """Move past what the batch covers: its ranges, and (in any case) its rows' own offsets."""
        ends: dict[int, int] = {}
        if manifest is not None:
            ends = {p: r.end for p, r in manifest.offsets.items()}
            self.lineage_offsets.update(ends)
        if parsed is not None:
            for p, (_, high) in parsed.partition_bounds.items():
                ends[p] = max(ends.get(p, 0), high + 1)
        for p, end in ends.items():
            self.next_offsets[p] = max(self.next_offsets.get(p, 0), end)
