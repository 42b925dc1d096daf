"""GENERATOR_PARTITION_KEY reaching the records' keys: the generator as a real process against the real
broker, once per key setting, its topic read back."""

from __future__ import annotations

from collections import Counter

import pytest

from contract.events import CUSTOMER_IDS, FIRST_EVENT_OFFSET
from services.generator.keys import PARTITION_KEYS, key_of
from tests.generator.conftest import Record, read_topic

pytestmark = pytest.mark.integration


def _valid_offsets(records: list[Record]) -> list[int]:
    return sorted(o for r in records if (e := r.event) is not None and type(o := e.get("eventOffset")) is int)


def _check_keys(records: list[Record], key_by: str) -> None:
    """Every valid event keyed as key_of says, every malformed record keyed the way the setting keys;
    a non-null key on one partition only."""
    where: dict[bytes, set[int]] = {}
    for r in records:
        e = r.event
        if e is not None and type(e.get("eventOffset")) is int:
            assert r.key == key_of(e, key_by), (r, key_by)  # type: ignore[arg-type]
        elif key_by == "customerId":
            assert r.key is not None and r.key.decode() in CUSTOMER_IDS
        elif key_by == "none":
            assert r.key is None
        if r.key is not None:
            where.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in where.values()), where


@pytest.mark.slow
@pytest.mark.parametrize("key_by", PARTITION_KEYS)
def test_the_key_setting_reaches_the_records_keys(kafka, generator_factory, tmp_path, key_by: str) -> None:
    topic = kafka.new_topic(partitions=3)
    gen = generator_factory(kafka.bootstrap, topic, tmp_path / "data", GENERATOR_PARTITION_KEY=key_by)
    # the fast path with malformed records, then a fleet (the record maker's path)
    resp = gen.post("/generator/start", {"rate": 5000, "count": 3000, "invalid_ratio": 0.1, "seed": 4})
    assert resp.status_code == 202, resp.text
    st = gen.wait_state({"completed"}, 60)
    assert (st.acknowledged, st.delivery_errors) == (3000, 0)
    fleet = {"customers": 4, "devices_per_customer": 5}
    resp = gen.post("/generator/start", {"rate": 5000, "count": 1000, "seed": 5, "fleet": fleet})
    assert resp.status_code == 202, resp.text
    assert gen.wait_state({"completed"}, 60).acknowledged == 1000

    records = read_topic(kafka.bootstrap, topic)
    assert len(records) == 4000
    _check_keys(records, key_by)
    keys = Counter(r.key for r in records)
    per_partition = Counter(r.partition for r in records)
    if key_by == "customerId":
        assert None not in keys and len(keys) == len(CUSTOMER_IDS)
    elif key_by == "deviceId":
        fleet_devices = {k for k in keys if k is not None and k > b"D005"}  # the fleet's are D001..D020
        assert keys[None] > 0 and fleet_devices  # device-less events, and the fleet's own devices
    else:
        assert set(keys) == {None}
        # round robin: every partition gets a third (within a few records: two runs, malformed ones)
        assert set(per_partition) == {0, 1, 2} and max(per_partition.values()) - min(per_partition.values()) <= 3
    valid = _valid_offsets(records)
    assert valid == list(range(FIRST_EVENT_OFFSET, FIRST_EVENT_OFFSET + len(valid)))


@pytest.mark.slow
def test_null_keys_and_a_lost_state_file_offsets_continue_from_the_topic(kafka, generator_factory, tmp_path) -> None:
    """With null keys every partition's newest record still tells the next eventOffset: a generator
    with a wiped data folder continues after the topic's highest (offsets.topic_next_offset)."""
    topic = kafka.new_topic(partitions=3)
    first = generator_factory(kafka.bootstrap, topic, tmp_path / "a", GENERATOR_PARTITION_KEY="none")
    assert first.post("/generator/start", {"rate": 5000, "count": 1000, "invalid_ratio": 0.3}).status_code == 202
    assert first.wait_state({"completed"}, 60).acknowledged == 1000
    assert first.proc.stop() == 0
    again = generator_factory(kafka.bootstrap, topic, tmp_path / "b", GENERATOR_PARTITION_KEY="none")
    assert again.post("/generator/start", {"rate": 5000, "count": 500}).status_code == 202
    assert again.wait_state({"completed"}, 60).acknowledged == 500
    records = read_topic(kafka.bootstrap, topic)
    valid = _valid_offsets(records)
    assert len(valid) == len(set(valid)) and valid == list(range(FIRST_EVENT_OFFSET, FIRST_EVENT_OFFSET + len(valid)))
    assert {r.key for r in records} == {None} and {r.partition for r in records} == {0, 1, 2}
