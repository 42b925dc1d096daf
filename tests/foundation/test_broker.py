"""The embedded broker is a real Kafka: what is produced is consumed back, and survives a restart."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from contract.kafka import make_admin
from devicestream.kafka_broker import ensure_topic
from tests.conftest import Broker
from tests.helpers import produce

pytestmark = pytest.mark.integration


async def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[bytes] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while len(out) < expected and loop.time() < end:
            batch = await consumer.getmany(timeout_ms=500)
            out += [m.value for msgs in batch.values() for m in msgs]
        return out
    finally:
        await consumer.stop()


def test_produce_and_consume_back(kafka) -> None:
    topic = kafka.new_topic(partitions=1)
    produce(kafka.bootstrap, topic, [b"hello", b"world"], enable_idempotence=True)
    assert asyncio.run(_consume_all(kafka.bootstrap, topic, 2)) == [b"hello", b"world"]


def test_message_survives_broker_restart(private_kafka) -> None:
    asyncio.run(ensure_topic(private_kafka.bootstrap, "persist", 1))
    produce(private_kafka.bootstrap, "persist", [b"kept"], enable_idempotence=True)
    private_kafka.stop()
    private_kafka.start()
    assert asyncio.run(_consume_all(private_kafka.bootstrap, "persist", 1)) == [b"kept"]


def test_kafka_ids_never_start_with_a_dash() -> None:
    from devicestream.kafka_broker import new_kafka_uuid

    ids = [new_kafka_uuid() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)


async def _topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (resource,) = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


def test_the_topic_gets_retention_bytes_when_created_and_when_it_exists(kafka: Broker) -> None:
    topic = kafka.new_topic(partitions=1)  # created without the configs, as an older version did
    assert asyncio.run(_topic_config(kafka.bootstrap, topic))["retention.bytes"] == "-1"

    asyncio.run(ensure_topic(kafka.bootstrap, topic, 1, retention_bytes=5 * 1024**2, segment_bytes=1024**2))
    config = asyncio.run(_topic_config(kafka.bootstrap, topic))
    assert (config["retention.bytes"], config["segment.bytes"]) == (str(5 * 1024**2), str(1024**2))

    fresh = f"{topic}-new"
    asyncio.run(ensure_topic(kafka.bootstrap, fresh, 2, retention_bytes=7 * 1024**2))
    assert asyncio.run(_topic_config(kafka.bootstrap, fresh))["retention.bytes"] == str(7 * 1024**2)
