"""eventOffset allocation that never hands out a value twice, across runs, restarts and crashes.

The state file (layout.generator_state) holds `next_offset`: the first value that is safe to hand
out after a restart. Before handing out values beyond what the file covers, the allocator reserves
a block ahead (writes next_offset = reserved end, durably); a crash therefore skips at most one
block, never reuses. A clean close writes the exact next value so the next run continues without
a gap.

With no state file (first start, or a wiped data folder), the topic's newest records are read so
offsets already in Kafka are not reused either. Every record the generator writes tells the next
eventOffset at the time it was made: a valid event by its eventOffset (plus one), any other (a
malformed record, a record sent again after a failed delivery) by its NEXT_OFFSET_HEADER. So the
newest record of each partition is enough; when it tells nothing (written by someone else, or by a
generator older than the header) the scan steps back, window by doubling window, until a record
that tells is found or the partition's start is reached."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from contract.events import FIRST_EVENT_OFFSET
from contract.files import atomic_write_json, read_json
from contract.kafka import PLAINTEXT, KafkaSecurity
from kafka_io.admin import offsets_consumer, topic_partitions
from services.generator.errors import OffsetStateError

log = logging.getLogger(__name__)


def read_state_next(path: Path) -> int | None:
    """`next_offset` from the state file, None when there is no file."""
    try:
        doc = read_json(path)
    except (OSError, orjson.JSONDecodeError) as e:
        raise OffsetStateError(f"cannot read the generator state {path}: {e}") from e
    if doc is None:
        return None
    nxt = doc.get("next_offset") if isinstance(doc, dict) else None
    if not isinstance(nxt, int) or isinstance(nxt, bool) or nxt < 0:
        raise OffsetStateError(f"the generator state {path} has no valid next_offset: {doc!r}")
    return nxt


class OffsetAllocator:
    """Hands out consecutive eventOffsets; persists reservations before use."""

    def __init__(self, path: Path, next_offset: int, *, block: int = 100_000, durable: bool = True) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        self.path = path
        self.block = block
        self.durable = durable
        self._next = next_offset
        self._reserved_until = next_offset  # values below this are covered by the state file
        self._write(next_offset)

    @classmethod
    def open(
        cls, path: Path, *, topic_next: int | None = None, block: int = 100_000, durable: bool = True
    ) -> OffsetAllocator:
        """Continue from the state file, never below `topic_next` (one past the newest eventOffset
        found in the topic) nor below FIRST_EVENT_OFFSET."""
        state_next = read_state_next(path)
        start = max(FIRST_EVENT_OFFSET, state_next or 0, topic_next or 0)
        log.info(
            "eventOffsets continue at %d",
            start,
            extra={"path": str(path), "state_next": state_next, "topic_next": topic_next},
        )
        return cls(path, start, block=block, durable=durable)

    @property
    def next(self) -> int:
        return self._next

    @property
    def reserved_until(self) -> int:
        return self._reserved_until

    def take(self, n: int) -> int:
        """Reserve `n` consecutive offsets; returns the first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        first = self._next
        end = first + n
        if end > self._reserved_until:
            self._write(first + max(n, self.block))
        self._next = end
        return first

    def close(self) -> None:
        """Give back the unused part of the reservation: the next start continues at `next`."""
        self._write(self._next)

    def _write(self, reserved_until: int) -> None:
        atomic_write_json(self.path, {"next_offset": reserved_until, "updated_at": time.time()}, durable=self.durable)
        self._reserved_until = reserved_until


#: Record header: the next eventOffset the generator would hand out when it made the record.
NEXT_OFFSET_HEADER = "devicestream-next-offset"
#: How many of a partition's newest records the scan reads first (then twice as many, ...).
FIRST_WINDOW = 50


def next_offset_header(next_offset: int) -> tuple[str, bytes]:
    return (NEXT_OFFSET_HEADER, str(next_offset).encode())


def next_offset_of(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """What a record tells about the next eventOffset: its NEXT_OFFSET_HEADER, or one past its
    eventOffset; None when it tells nothing."""
    for name, raw in headers or ():
        if name == NEXT_OFFSET_HEADER:
            with contextlib.suppress(ValueError):
                return int(raw)
    off = event_offset_of(value)
    return None if off is None else off + 1


def event_offset_of(value: bytes | None) -> int | None:
    """The eventOffset of a record value, None when it is not a valid event."""
    if not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    off = doc.get("eventOffset") if isinstance(doc, dict) else None
    return off if isinstance(off, int) and not isinstance(off, bool) else None


async def topic_next_offset(
    bootstrap: str,
    topic: str,
    *,
    tail: int = FIRST_WINDOW,
    timeout_s: float = 10.0,
    security: KafkaSecurity = PLAINTEXT,
) -> int | None:
    """The next eventOffset that is safe after what `topic` holds: the highest that the newest
    telling record of each partition tells (see the module docstring), or None when no record of
    the topic tells anything (or it does not exist). `timeout_s` bounds each request, not the scan
    (a topic without a telling record is read back to its start)."""
    parts = await topic_partitions(bootstrap, topic, security, timeout_s=timeout_s)
    if not parts:
        return None
    async with offsets_consumer(bootstrap, security, timeout_s=timeout_s) as consumer:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        found = [await _newest_telling(consumer, tp, begin[tp], end[tp], tail, timeout_s) for tp in tps]
    told = [n for n in found if n is not None]
    return max(told) if told else None


async def _newest_telling(
    consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int, end: int, window: int, timeout_s: float
) -> int | None:
    """The highest next offset told by the newest window of partition `tp` holding a telling record,
    reading [begin, end) backwards in doubling windows."""
    stop = end
    while stop > begin:
        start = max(begin, stop - window)
        consumer.seek(tp, start)
        best: int | None = None
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < stop:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {tp.topic}[{tp.partition}] from {start} took over {timeout_s}s")
            batch = await consumer.getmany(tp, timeout_ms=500)
            for rec in batch.get(tp, ()):
                if rec.offset < stop and (told := next_offset_of(rec.value, rec.headers)) is not None:
                    best = told if best is None else max(best, told)
        if best is not None:
            return best
        stop, window = start, window * 2
    return None
