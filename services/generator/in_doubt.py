"""Batches whose delivery failed but that may be in Kafka already: settled before anything is re-sent.

A failed delivery does not prove the broker did not write the batch: a request the broker received
and wrote before it froze (SIGSTOP, a long GC pause) is answered too late or never, and when the
producer is then replaced (its sender died, or its sequence numbers no longer match the broker's)
the old producer's batches all fail, written or not. Sent again as new records, a written batch
would be in Kafka twice, under two offsets, and merged twice.

So a failed batch is *in doubt* (Run.in_doubt) until settled: once nothing of the run is in
flight, each partition holding in-doubt batches is read from the lowest offset they can have
landed at (what was confirmed there when they were handed over: an acknowledged batch's end, or
the partition's end offset when the producer connected) up to its end offset now. A Kafka batch is
written whole or not at all, so an in-doubt batch is written when its records (key and value,
byte for byte) appear there in a row; a valid event's value carries its eventOffset, so two
batches never look alike. Found: its records are counted as delivered, at the offsets found; not
found: they are sent again (their records then carry the `devicestream-next-offset` header, as
every re-sent record does). The re-sent fault of a run's ledger is a new record with a new
eventOffset, never an in-doubt batch: it is unaffected."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from contract.kafka import KafkaSecurity
from kafka_io.admin import end_offsets_of, offsets_consumer
from services.generator.batching import Record


@dataclass(frozen=True)
class Doubtful:
    """One failed batch: its partition and records, in the order it was handed over (`seq`), and
    the lowest offset it can have landed at (the partition's confirmed end when it was handed over:
    the log only grows, so it went after every batch acknowledged before)."""

    seq: int
    partition: int
    records: list[Record]
    since: int


@dataclass(frozen=True)
class TailRecord:
    offset: int
    key: bytes | None
    value: bytes | None


def find_written(batches: Sequence[Sequence[Record]], tail: Sequence[TailRecord]) -> list[int | None]:
    """Pure: for each batch (in the order it was handed over), the Kafka offset of its first record
    when its records appear in a row in `tail` (one partition's records, in offset order), else
    None. Each tail record is matched once; a batch is looked for after the previous one found
    first (a producer writes a partition's batches in order), then anywhere not matched yet."""
    starts: dict[tuple[bytes | None, bytes | None], list[int]] = {}
    for i, rec in enumerate(tail):
        starts.setdefault((rec.key, rec.value), []).append(i)
    used = [False] * len(tail)
    cursor = 0
    out: list[int | None] = []
    for batch in batches:
        found = None
        if batch:
            candidates = starts.get(batch[0], [])
            ordered = [i for i in candidates if i >= cursor] + [i for i in candidates if i < cursor]
            for i in ordered:
                if i + len(batch) <= len(tail) and _matches(batch, tail, used, i):
                    found = i
                    break
        if found is None:
            out.append(None)
            continue
        for j in range(found, found + len(batch)):
            used[j] = True
        cursor = found + len(batch)
        out.append(tail[found].offset)
    return out


def _matches(batch: Sequence[Record], tail: Sequence[TailRecord], used: list[bool], at: int) -> bool:
    for k, (key, value) in enumerate(batch):
        rec = tail[at + k]
        if used[at + k] or rec.key != key or rec.value != value:
            return False
    return True


async def read_tails(
    bootstrap: str,
    topic: str,
    since: dict[int, int],
    security: KafkaSecurity,
    *,
    timeout_s: float = 30.0,
) -> tuple[dict[int, list[TailRecord]], dict[int, int]]:
    """Each partition's records from `since[p]` to its end offset now, and those end offsets."""
    async with offsets_consumer(bootstrap, security, timeout_s=timeout_s) as consumer:
        ends = await end_offsets_of(consumer, topic, sorted(since))
        begins = await consumer.beginning_offsets([TopicPartition(topic, p) for p in since])
        tails: dict[int, list[TailRecord]] = {}
        for part, start in since.items():
            tp = TopicPartition(topic, part)
            consumer.assign([tp])
            consumer.seek(tp, max(start, begins[tp]))  # below the log start: retention deleted it
            out: list[TailRecord] = []
            tails[part] = out
            deadline = time.monotonic() + timeout_s
            while await consumer.position(tp) < ends[part]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}[{part}] from {start} took over {timeout_s}s")
                got = await consumer.getmany(tp, timeout_ms=500)
                out += [TailRecord(r.offset, r.key, r.value) for r in got.get(tp, ()) if r.offset < ends[part]]
        return tails, ends
