"""eventOffset allocation: continuity, never reused across a crash, clean restart, wiped state."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from contract.events import FIRST_EVENT_OFFSET
from services.generator.errors import OffsetStateError
from services.generator.event_offset_allocator import (
    OffsetAllocator,
    event_offset_of,
    next_offset_header,
    next_offset_of,
    read_state_next,
)


def test_starts_at_first_event_offset_and_is_consecutive(tmp_path: Path) -> None:
    state = tmp_path / "generator" / "state.json"
    alloc = OffsetAllocator.open(state, block=100, durable=False)
    assert alloc.next == FIRST_EVENT_OFFSET == 10_000
    got = [alloc.take(1) for _ in range(250)]
    assert got == list(range(10_000, 10_250))
    assert alloc.take(10) == 10_250
    assert alloc.take(0) == 10_260
    # the file always covers what was handed out
    assert read_state_next(state) >= alloc.next


def test_crash_never_reuses_offsets(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    a = OffsetAllocator.open(state, block=1000, durable=False)
    handed = [a.take(1) for _ in range(1500)]
    # no close(): the process was killed
    b = OffsetAllocator.open(state, block=1000, durable=False)
    assert b.take(1) > max(handed)


def test_clean_close_continues_without_gap(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    a = OffsetAllocator.open(state, block=1000, durable=False)
    a.take(42)
    a.close()
    b = OffsetAllocator.open(state, block=1000, durable=False)
    assert b.take(1) == 10_042


def test_a_big_take_reserves_all_of_it(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    a = OffsetAllocator.open(state, block=10, durable=False)
    assert a.take(5000) == 10_000
    assert read_state_next(state) >= 15_000


def test_topic_offsets_win_over_a_wiped_or_older_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert OffsetAllocator.open(state, topic_next=77_000, durable=False).next == 77_000
    state.write_bytes(orjson.dumps({"next_offset": 90_000}))
    assert OffsetAllocator.open(state, topic_next=77_000, durable=False).next == 90_000


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"next_offset": "x"}', b'{"next_offset": -5}'])
def test_unreadable_state_is_an_error_not_a_reset(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    with pytest.raises(OffsetStateError, match="state"):
        OffsetAllocator.open(state, durable=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"eventOffset": 12}', 12),
        (b'{"eventOffset": "12"}', None),
        (b'{"eventOffset": true}', None),
        (b"[12]", None),
        (b"\xff", None),
        (b"", None),
        (None, None),
    ],
)
def test_event_offset_of(value: bytes | None, expected: int | None) -> None:
    assert event_offset_of(value) == expected


def test_what_a_record_tells_about_the_next_offset() -> None:
    event = orjson.dumps({"eventOffset": 10_041, "eventId": "e"})
    assert next_offset_of(event, ()) == 10_042
    assert next_offset_of(b"garbage", [next_offset_header(10_500)]) == 10_500
    assert next_offset_of(event, [("other", b"1"), next_offset_header(10_900)]) == 10_900  # a re-sent record
    assert next_offset_of(b"garbage", [("other", b"1")]) is None
    assert next_offset_of(None, None) is None
