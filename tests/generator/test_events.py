"""Event making: shape, value ranges, seeded reproducibility, the fast encoder, malformed records."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from contract.csv import EVENT_TIME_FORMAT
from contract.events import CUSTOMER_IDS, DEVICE_IDS, EVENT_FIELDS, READING_FIELDS, REQUIRED_FIELDS, STATUSES
from services.generator.events import (
    INVALID_KINDS,
    EventClock,
    EventEncoder,
    format_event_time,
    make_event,
    make_invalid,
)

NOW = datetime(2026, 11, 28, 3, 33, 11, 123456, tzinfo=UTC)


def test_event_shape_and_value_ranges() -> None:
    rng = random.Random(7)
    counts = set()
    for i in range(3000):
        e = make_event(rng, NOW, 10_000 + i)
        assert list(e) == list(EVENT_FIELDS)
        assert uuid.UUID(e["eventId"]).version == 4
        assert str(uuid.UUID(e["eventId"])) == e["eventId"]
        assert e["eventOffset"] == 10_000 + i
        assert e["eventPublisher"] == "device"
        assert e["customerId"] in CUSTOMER_IDS
        assert e["eventTime"] == "2026-11-28T03:33:11.123456Z"
        devices = e["data"]["devices"]
        assert list(e["data"]) == ["devices"]
        assert 0 <= len(devices) <= 3
        counts.add(len(devices))
        for r in devices:
            assert list(r) == list(READING_FIELDS)
            assert r["deviceId"] is None or r["deviceId"] in DEVICE_IDS
            assert type(r["temperature"]) is int and 0 <= r["temperature"] <= 30
            assert r["measure"] == "C"
            assert r["status"] is None or r["status"] in STATUSES
    assert counts == {0, 1, 2, 3}


def test_event_time_is_utc_with_microseconds() -> None:
    local = NOW.replace(tzinfo=None)
    t = format_event_time(NOW.astimezone(timezone(timedelta(hours=2))))
    assert t == "2026-11-28T03:33:11.123456Z"
    assert datetime.strptime(t, EVENT_TIME_FORMAT) == local


def test_clock_formats_now() -> None:
    ticks = iter([1_795_000_000_250_000_000, 1_795_000_000_500_000_999, 1_795_000_001_000_001_000])
    clock = EventClock(lambda: next(ticks))
    expected = datetime.fromtimestamp(1_795_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert clock.now() == f"{expected}.250000Z"
    assert clock.now() == f"{expected}.500000Z"
    later = datetime.fromtimestamp(1_795_000_001, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert clock.now() == f"{later}.000001Z"


def _content(e: dict) -> dict:
    return {k: v for k, v in e.items() if k not in ("eventTime", "eventOffset")}


def test_seed_reproduces_everything_but_time_and_offset() -> None:
    r1, r2 = random.Random(42), random.Random(42)
    run1 = [make_event(r1, NOW, 10_000 + i) for i in range(200)]
    run2 = [make_event(r2, NOW + timedelta(hours=1), 50_000 + i) for i in range(200)]
    assert [_content(e) for e in run1] == [_content(e) for e in run2]
    other = [make_event(random.Random(43), NOW, 0)]
    assert _content(other[0]) != _content(run1[0])


def test_encoder_matches_make_event_byte_for_byte() -> None:
    r1, r2 = random.Random(5), random.Random(5)
    enc = EventEncoder()
    t = format_event_time(NOW)
    for i in range(2000):
        e = make_event(r1, NOW, 10_000 + i)
        key, value = enc.encode(r2, t, 10_000 + i)
        assert value == orjson.dumps(e)
        assert key == e["customerId"].encode()


def _rejected(value: bytes) -> str | None:
    """What the Spark job checks (issue 4), in plain Python: the reason a value is rejected."""
    if not value:
        return "empty"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "not utf-8"
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "not json"
    if not isinstance(doc, dict):
        return "not an object"
    for f in REQUIRED_FIELDS:
        if f not in doc:
            return f"missing {f}"
    if not isinstance(doc["eventId"], str) or not isinstance(doc["eventTime"], str):
        return "wrong type"
    if not isinstance(doc["eventOffset"], int) or isinstance(doc["eventOffset"], bool):
        return "wrong type"
    if not isinstance(doc.get("data"), dict):
        return "wrong type"
    return None


def test_invalid_records_are_varied_and_all_rejectable() -> None:
    rng = random.Random(1)
    kinds = set()
    for _ in range(400):
        key, value, kind = make_invalid(rng, NOW)
        kinds.add(kind)
        assert key.decode() in CUSTOMER_IDS
        assert _rejected(value) is not None, (kind, value)
    assert kinds == set(INVALID_KINDS)


@pytest.mark.parametrize("seed", [0, 1])
def test_valid_events_are_not_rejected(seed: int) -> None:
    rng = random.Random(seed)
    for i in range(200):
        assert _rejected(orjson.dumps(make_event(rng, NOW, i))) is None
