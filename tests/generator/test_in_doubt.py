"""Settling batches in doubt (pure): which failed batches are in a partition's tail already."""

from __future__ import annotations

from services.generator.in_doubt import TailRecord, find_written


def _tail(base: int, recs: list[tuple[bytes, bytes]]) -> list[TailRecord]:
    return [TailRecord(base + i, k, v) for i, (k, v) in enumerate(recs)]


A = [(b"CI1", b'{"eventOffset":10}'), (b"CI1", b'{"eventOffset":11}')]
B = [(b"CI1", b'{"eventOffset":12}')]
C = [(b"CI1", b'{"eventOffset":13}'), (b"CI1", b"")]


def test_written_batches_are_found_at_their_offsets_the_others_are_not() -> None:
    tail = _tail(100, [(b"other", b"x"), *A, *B])  # someone else's record first
    assert find_written([A, B, C], tail) == [101, 103, None]


def test_a_batch_is_written_whole_or_not_at_all() -> None:
    tail = _tail(0, A[:1])  # only part of A in a row: not A
    assert find_written([A], tail) == [None]


def test_each_record_in_kafka_is_matched_once() -> None:
    bad = [(b"CI1", b"")]  # two malformed batches alike: one record in Kafka explains one of them
    assert find_written([bad, bad], _tail(7, bad)) == [7, None]
    assert find_written([bad, bad], _tail(7, bad + bad)) == [7, 8]


def test_an_empty_tail_means_nothing_was_written() -> None:
    assert find_written([A, B], []) == [None, None]
