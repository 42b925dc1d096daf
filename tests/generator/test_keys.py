"""GENERATOR_PARTITION_KEY: the key each record gets (fast path, dict events, faults and fleet) and the
partition each key goes to. Pure: no Kafka (tests/generator/test_partition_key.py has the broker)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from contract.events import CUSTOMER_IDS, DEVICE_IDS
from contract.generator_options import FaultOptions, FleetOptions
from services.generator.batching import Batches
from services.generator.events import EventEncoder, format_event_time, make_event, make_invalid
from services.generator.faults import RecordMaker
from services.generator.keys import PARTITION_KEYS, KeyPartitioner, first_device_id, key_of
from services.generator.settings import GeneratorSettings

NOW = datetime(2026, 11, 28, 3, 33, 11, 123456, tzinfo=UTC)


def _reading(device: str | None) -> dict:
    return {"deviceId": device, "temperature": 1, "measure": "C", "status": None}


def _event(*devices: str | None) -> dict:
    return {"customerId": "CI00107", "data": {"devices": [_reading(d) for d in devices]}}


def test_the_key_of_an_event_for_each_setting() -> None:
    assert key_of(_event("D002", "D001"), "customerId") == b"CI00107"
    assert key_of(_event("D002", "D001"), "deviceId") == b"D002"
    assert key_of(_event(None, "D004"), "deviceId") == b"D004"  # the first reading that names a device
    assert key_of(_event(None), "deviceId") is None  # no device named: a null key
    assert key_of(_event(), "deviceId") is None  # no readings
    assert key_of({"customerId": "CI00107", "data": "devices"}, "deviceId") is None  # malformed data
    assert key_of(_event("D002"), "none") is None
    assert first_device_id([{"deviceId": 3}, "x", _reading("D005")]) == "D005"


@pytest.mark.parametrize("key_by", PARTITION_KEYS)
def test_the_encoder_keys_as_key_of_says_byte_for_byte(key_by: str) -> None:
    r1, r2 = random.Random(9), random.Random(9)
    enc = EventEncoder(key_by)  # type: ignore[arg-type]
    t = format_event_time(NOW)
    keys = Counter()
    for i in range(3000):
        e = make_event(r1, NOW, 10_000 + i)
        key, value = enc.encode(r2, t, 10_000 + i)
        assert value == orjson.dumps(e)  # the value does not depend on the key setting
        assert key == key_of(e, key_by)  # type: ignore[arg-type]
        keys[key] += 1
    expected = {
        "customerId": {c.encode() for c in CUSTOMER_IDS},
        "deviceId": {d.encode() for d in DEVICE_IDS} | {None},
        "none": {None},
    }[key_by]
    assert set(keys) == expected


@pytest.mark.parametrize("key_by", PARTITION_KEYS)
def test_malformed_faulty_and_fleet_records_are_keyed_the_same_way(key_by: str) -> None:
    rng = random.Random(3)
    for _ in range(200):
        key, _value, _kind = make_invalid(random.Random(rng.random()), NOW, key_by)  # type: ignore[arg-type]
        if key_by == "customerId":
            assert key is not None and key.decode() in CUSTOMER_IDS
        elif key_by == "none":
            assert key is None
    faults = FaultOptions(invalid_ratio=0.1, resend_ratio=0.1, late_ratio=0.1)
    maker = RecordMaker(5, fleet=FleetOptions(customers=4), faults=faults, key_by=key_by)  # type: ignore[arg-type]
    owner = maker.fleet.owner() if maker.fleet is not None else {}
    for k in range(500):
        key, value, off, _fault = maker.make(lambda k=k: k, 1_795_824_000 * 10**9)
        if off is None:
            continue  # malformed: keyed from the content it was drawn from (above)
        event = orjson.loads(value)
        assert key == key_of(event, key_by)  # type: ignore[arg-type]
        if key_by == "deviceId" and key is not None:
            assert owner[key.decode()] == event["customerId"]  # a fleet device, of this customer


def test_keys_go_where_kafkas_default_partitioner_puts_them() -> None:
    keys = [c.encode() for c in CUSTOMER_IDS] + [d.encode() for d in DEVICE_IDS] + [b"D1234", b""]
    for n in (1, 3, 7, 12):
        parts = list(range(n))
        partition_of = KeyPartitioner(n)
        for key in keys * 2:  # the second time from its cache
            assert partition_of(key) == DefaultPartitioner()(key, parts, parts)


def test_null_keys_go_round_robin_over_every_partition() -> None:
    partition_of = KeyPartitioner(12)
    assert [partition_of(None) for _ in range(25)] == [*range(12), *range(12), 0]
    assert partition_of(b"CI00100") == partition_of(b"CI00100")  # keyed records do not move the turn
    assert partition_of(None) == 1
    with pytest.raises(ValueError, match="partitions"):
        KeyPartitioner(0)


class _Builder:
    def __init__(self) -> None:
        self.n = 0

    def append(self, *, timestamp: int | None, key: bytes | None, value: bytes | None, headers: list) -> object:
        self.n += 1
        return object()

    def close(self) -> None:
        pass


def test_the_batches_of_null_keyed_records_are_spread_evenly() -> None:
    batches = Batches(_Builder, KeyPartitioner(3), lambda: 1, lambda: 0.0)
    for i in range(3000):
        batches.put(None, b"%d" % i)
    out = batches.ready(now=1.0, linger_s=0.0, everything=True)
    assert sorted((b.partition, len(b.records)) for b in out) == [(0, 1000), (1, 1000), (2, 1000)]


def test_the_setting_is_one_of_three_and_customer_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GeneratorSettings(kafka_bootstrap_servers="h:1").partition_key == "customerId"
    monkeypatch.setenv("GENERATOR_PARTITION_KEY", "none")
    assert GeneratorSettings(kafka_bootstrap_servers="h:1").partition_key == "none"
    monkeypatch.setenv("GENERATOR_PARTITION_KEY", "device")
    with pytest.raises(ValueError, match="partition_key"):
        GeneratorSettings(kafka_bootstrap_servers="h:1")


def test_batches_in_doubt_with_null_keys_are_found_by_their_values() -> None:
    """in_doubt.find_written matches (key, value) byte for byte: a null key matches a null key only."""
    from services.generator.in_doubt import TailRecord, find_written

    tail = [TailRecord(40 + i, None, b"v%d" % i) for i in range(4)]
    assert find_written([[(None, b"v1"), (None, b"v2")], [(None, b"v9")], [(b"k", b"v3")]], tail) == [41, None, None]
