"""Records gathered into one open Kafka record batch per partition; a batch comes out when it is
full or older than linger_s. Pure bookkeeping: the batch builders (aiokafka's BatchBuilder, from
`producer.create_batch()`) and the clock are passed in.

A record whose value does not tell the newest eventOffset handed out (a malformed record, or one
sent again after a failed delivery: its eventOffset is older) is `mark`ed with the
NEXT_OFFSET_HEADER, so the newest record of every partition always tells where the offsets are
(see offsets.topic_next_offset)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.generator.errors import GeneratorError
from services.generator.event_offset_allocator import next_offset_header

#: (key, value) of one record, as handed to the batch and kept to be sent again if it fails; a null
#: key (GENERATOR_PARTITION_KEY=none, or an event naming no device with deviceId) is None
Record = tuple[bytes | None, bytes]


class BatchBuilder(Protocol):
    """What is used of aiokafka's BatchBuilder."""

    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Any: ...  # None when the batch is full

    def close(self) -> Any: ...


@dataclass
class Batch:
    """One partition's batch: open while records are appended, closed when it comes out of `ready`."""

    partition: int
    builder: BatchBuilder
    opened_at: float
    records: list[Record] = field(default_factory=list)
    #: records sent for the first time (the others are sent again after a failed delivery)
    new_records: int = 0


class Batches:
    """One open batch per partition; full or lingered batches come out of `ready`."""

    def __init__(
        self,
        new_builder: Callable[[], BatchBuilder],
        partition_of: Callable[[bytes | None], int],
        next_offset: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new_builder = new_builder
        self._partition_of = partition_of
        self._next_offset = next_offset
        self._clock = clock
        self._open: dict[int, Batch] = {}
        self._full: list[Batch] = []

    def _new(self, part: int) -> Batch:
        batch = self._open[part] = Batch(part, self._new_builder(), self._clock())
        return batch

    def put(self, key: bytes | None, value: bytes, *, is_retry: bool = False, mark: bool = False) -> None:
        """Add one record to the batch of its key's partition (`partition_of`: keys.KeyPartitioner, a
        null key round robin). `is_retry`: it is sent again after a failed delivery (not counted as
        new, and marked; with a null key it may land on another partition than the first time);
        `mark`: give it the NEXT_OFFSET_HEADER."""
        part = self._partition_of(key)
        batch = self._open.get(part) or self._new(part)
        headers = [next_offset_header(self._next_offset())] if mark or is_retry else []
        if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            self._full.append(batch)
            batch = self._new(part)
            if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise GeneratorError(f"a record of {len(value)} bytes does not fit in an empty batch")
        batch.records.append((key, value))
        if not is_retry:
            batch.new_records += 1

    def records(self) -> int:
        """Records in batches not handed to the producer yet."""
        return sum(len(b.records) for b in self._open.values()) + sum(len(b.records) for b in self._full)

    def discard(self) -> int:
        """Drop every batch not handed over; returns how many records they held."""
        n = self.records()
        self._open.clear()
        self._full.clear()
        return n

    def oldest(self) -> float | None:
        """When the oldest open batch was opened, None when none is."""
        return min((b.opened_at for b in self._open.values()), default=None)

    def ready(self, now: float, linger_s: float, everything: bool) -> list[Batch]:
        """The full batches, and the open ones that lingered long enough (all with `everything`),
        closed and taken out."""
        out, self._full = self._full, []
        for part in [q for q, b in self._open.items() if everything or now - b.opened_at >= linger_s]:
            batch = self._open.pop(part)
            batch.builder.close()
            out.append(batch)
        return out
