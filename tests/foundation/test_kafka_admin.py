"""contract/kafka_admin.py against a real broker: create (once), configs, leaders, partitions, end
offsets, deleting old records."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidReplicationFactorError

from contract.kafka_admin import (
    admin_client,
    alter_topic_configs,
    create_topic,
    delete_records,
    describe_cluster,
    end_offsets,
    offsets_consumer,
    topic_partitions,
    wait_for_leaders,
)
from tests.conftest import Broker

pytestmark = pytest.mark.integration


async def _lifecycle(bootstrap: str, topic: str) -> None:
    async with admin_client(bootstrap, timeout_s=10) as admin:
        assert await create_topic(admin, topic, 2, configs={"retention.bytes": "1048576"})
        assert not await create_topic(admin, topic, 2)  # exists already: no error
        assert await alter_topic_configs(admin, topic, {"retention.bytes": "2097152"}) is None
        assert await wait_for_leaders(admin, topic, deadline_s=30) == 2
        with pytest.raises(InvalidReplicationFactorError):
            await create_topic(admin, f"{topic}-rf", 1, replication_factor=3)  # one broker only
    assert len((await describe_cluster(bootstrap, timeout_s=5))["brokers"]) == 1
    assert await topic_partitions(bootstrap, topic, timeout_s=5) == [0, 1]
    assert await topic_partitions(bootstrap, f"{topic}-missing") == []
    assert await end_offsets(bootstrap, f"{topic}-missing") == {}

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(4):
            await producer.send_and_wait(topic, b"%d" % i, partition=1)
    finally:
        await producer.stop()
    assert await end_offsets(bootstrap, topic) == {0: 0, 1: 4}
    await delete_records(bootstrap, topic, {1: 3})
    async with offsets_consumer(bootstrap) as consumer:
        tp = TopicPartition(topic, 1)
        assert (await consumer.beginning_offsets([tp]))[tp] == 3


def test_topic_lifecycle(kafka: Broker) -> None:
    asyncio.run(_lifecycle(kafka.bootstrap, f"admin-{uuid.uuid4().hex[:8]}"))
