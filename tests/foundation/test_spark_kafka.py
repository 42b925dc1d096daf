"""pyspark plus the resolved connector jars reads records from the embedded broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

pytestmark = pytest.mark.integration


def test_spark_batch_reads_the_topic(kafka, spark) -> None:
    topic = kafka.new_topic(partitions=2)

    async def produce() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await p.start()
        try:
            await p.send_and_wait(topic, b'{"hello": "spark"}', key=b"a")
        finally:
            await p.stop()

    asyncio.run(produce())
    rows = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
        .selectExpr("CAST(value AS STRING) AS v")
        .collect()
    )
    assert [r.v for r in rows] == ['{"hello": "spark"}']
