"""One open batch per partition: full and lingered batches come out, new and re-sent records are
counted apart, records that do not tell the newest eventOffset are marked."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder as AiokafkaBatchBuilder

from services.generator.batching import Batches
from services.generator.errors import GeneratorError
from services.generator.event_offset_allocator import NEXT_OFFSET_HEADER

PARTS = {b"a": 0, b"b": 1}


@dataclass
class FakeBuilder:
    """Holds `capacity` records; records what was appended."""

    capacity: int = 3
    appended: list[tuple[bytes, bytes, list]] = field(default_factory=list)
    closed: bool = False

    def append(self, *, timestamp: int | None, key: bytes, value: bytes, headers: list) -> object | None:
        if len(self.appended) >= self.capacity or len(value) > 100:
            return None
        self.appended.append((key, value, headers))
        return object()

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _batches(clock: Clock | None = None, next_offset: int = 42) -> Batches:
    return Batches(FakeBuilder, PARTS.__getitem__, lambda: next_offset, clock or Clock())


def test_batches_linger_then_come_out_closed_one_per_partition() -> None:
    clock = Clock()
    b = _batches(clock)
    b.put(b"a", b"1")
    clock.t = 100.5
    b.put(b"b", b"2")
    assert b.records() == 2 and b.oldest() == 100.0
    assert b.ready(now=100.8, linger_s=1.0, everything=False) == []
    out = b.ready(now=101.0, linger_s=1.0, everything=False)
    assert [(x.partition, x.records, x.new_records) for x in out] == [(0, [(b"a", b"1")], 1)]
    assert out[0].builder.closed
    assert [x.partition for x in b.ready(now=101.0, linger_s=1.0, everything=True)] == [1]
    assert b.records() == 0 and b.oldest() is None


def test_a_full_batch_comes_out_at_once_and_the_record_goes_to_a_new_one() -> None:
    b = _batches()
    for i in range(4):
        b.put(b"a", str(i).encode())
    out = b.ready(now=100.0, linger_s=1.0, everything=False)
    assert [len(x.records) for x in out] == [3]
    assert b.records() == 1


def test_records_sent_again_are_not_new_and_are_marked_with_the_next_offset() -> None:
    b = _batches(next_offset=77)
    b.put(b"a", b"new")
    b.put(b"a", b"again", is_retry=True)
    b.put(b"a", b"malformed", mark=True)
    (batch,) = b.ready(now=100.0, linger_s=1.0, everything=True)
    assert (len(batch.records), batch.new_records) == (3, 2)
    headers = [h for _k, _v, h in batch.builder.appended]
    assert headers == [[], [(NEXT_OFFSET_HEADER, b"77")], [(NEXT_OFFSET_HEADER, b"77")]]


def test_a_record_too_big_for_an_empty_batch_is_refused() -> None:
    b = _batches()
    with pytest.raises(GeneratorError, match="does not fit"):
        b.put(b"a", b"x" * 200)


def test_discard_drops_what_was_not_handed_over() -> None:
    b = _batches()
    for i in range(5):
        b.put(b"ab"[i % 2 : i % 2 + 1], b"v")
    assert b.discard() == 5 and b.records() == 0


def test_with_aiokafkas_batch_builder() -> None:
    b = Batches(lambda: AiokafkaBatchBuilder(batch_size=200, compression_type=0), PARTS.__getitem__, lambda: 1)
    for i in range(20):
        b.put(b"a", b"%03d" % i)
    out = b.ready(now=float("inf"), linger_s=0.0, everything=True)
    assert sum(len(x.records) for x in out) == 20 and len(out) > 1
