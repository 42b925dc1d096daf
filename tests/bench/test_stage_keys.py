"""The key stage's backlog, made as the generator makes it, against a real broker (no Spark: the
stage's Spark script is bench/spark_keys.py, run by `python -m bench --only keys`)."""

from __future__ import annotations

import asyncio

import pytest

from bench.stage_keys import largest_share, produce_keyed
from kafka_io.admin import end_offsets


def test_largest_share() -> None:
    assert largest_share({0: 48, 1: 26, 2: 26}) == pytest.approx(0.48)
    assert largest_share({0: 0, 1: 0}) == 0.0


@pytest.mark.integration
@pytest.mark.parametrize(("key_by", "partitions"), [("customerId", 3), ("none", 12), ("deviceId", 12)])
def test_a_keyed_backlog_lands_as_its_key_places_it(kafka, key_by: str, partitions: int) -> None:
    topic = kafka.new_topic(partitions=partitions)
    rate = asyncio.run(produce_keyed(kafka.bootstrap, kafka.security, topic, 6000, key_by))  # type: ignore[arg-type]
    counts = asyncio.run(end_offsets(kafka.bootstrap, topic, kafka.security, timeout_s=30))
    assert rate > 0 and sum(counts.values()) == 6000
    share = largest_share(counts)
    if key_by == "none":  # round robin: exactly even
        assert set(counts.values()) == {500}
    elif key_by == "customerId":  # 21 customers by murmur2: one of 3 partitions takes ~48%
        assert 0.40 < share < 0.56
    else:  # 5 devices and the device-less (null, round robin): not every partition is as busy
        assert share > 1 / partitions
