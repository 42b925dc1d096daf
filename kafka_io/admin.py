"""Kafka administration, the one place for it: admin clients opened and closed around a block,
the cluster's brokers, a topic's partitions, creating a topic, setting its configs, waiting for its
partition leaders, each partition's end offset, deleting old records (as retention does). Used by
the launcher's broker (topic creation, readiness), the generator (topic creation, offset
recovery), `devicestream verify`, the gateway's /status probe and the tests. Clients come from
kafka_io/clients.py (`make_admin`, `make_consumer`: security options included).

The functions taking an `admin` or a `consumer` work on a started client, so one client serves a
sequence of requests; the ones taking `bootstrap` open and close their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contract.kafka import PLAINTEXT, KafkaSecurity
from kafka_io.clients import make_admin, make_consumer


def _timeout_options(timeout_s: float | None) -> dict[str, Any]:
    return {} if timeout_s is None else {"request_timeout_ms": int(timeout_s * 1000)}


async def _started(client: Any, timeout_s: float | None) -> None:
    await (client.start() if timeout_s is None else asyncio.wait_for(client.start(), timeout_s))


@asynccontextmanager
async def admin_client(
    bootstrap: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float | None = None, **options: Any
) -> AsyncIterator[Any]:
    """A started AIOKafkaAdminClient, closed on the way out. `timeout_s` bounds the start and each
    request (None: the client's defaults)."""
    admin = make_admin(bootstrap, security, **_timeout_options(timeout_s), **options)
    try:
        await _started(admin, timeout_s)
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def offsets_consumer(
    bootstrap: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float | None = None, **options: Any
) -> AsyncIterator[Any]:
    """A started consumer without a group (for offsets and reading by hand), stopped on the way out."""
    consumer = make_consumer(bootstrap, security, **_timeout_options(timeout_s), **options)
    try:
        await _started(consumer, timeout_s)
        yield consumer
    finally:
        await consumer.stop()


# ---- on a started admin client ---------------------------------------------------------------


def partitions_of(description: Sequence[dict[str, Any]]) -> list[int]:
    """The sorted partition ids in a DescribeTopics answer for one topic; [] when it does not exist."""
    if not description or description[0].get("error_code", 0) != 0:
        return []
    return sorted(p["partition"] for p in description[0].get("partitions", []))


async def topic_partitions_of(admin: Any, topic: str) -> list[int]:
    """The partition ids of `topic`, [] when it does not exist."""
    return partitions_of(await admin.describe_topics([topic]))


async def create_topic(
    admin: Any, topic: str, partitions: int, replication_factor: int = 1, configs: dict[str, str] | None = None
) -> bool:
    """Create `topic`; False when it exists already. Any other error the broker answers is raised
    (aiokafka returns per-topic errors rather than raising them)."""
    try:
        response = await admin.create_topics([NewTopic(topic, partitions, replication_factor, topic_configs=configs)])
    except TopicAlreadyExistsError:
        return False
    for _name, code, *rest in response.topic_errors:
        if code == TopicAlreadyExistsError.errno:
            return False
        if code:
            message = rest[0] if rest and rest[0] else ""
            raise for_code(code)(f"cannot create topic {topic}: {message}".rstrip(": "))
    return True


async def alter_topic_configs(admin: Any, topic: str, configs: dict[str, str]) -> str | None:
    """Set `configs` on an existing topic (AlterConfigs: the topic's dynamic configs become exactly
    these). Returns the broker's error, None when they are set."""
    responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    for response in responses:
        for error_code, error_message, *_ in response.resources:
            if error_code:
                return f"error {error_code} {error_message}"
    return None


async def wait_for_leaders(admin: Any, topic: str, deadline_s: float, poll_s: float = 0.2) -> int | None:
    """Wait until every partition of `topic` has a leader; its partition count, or None when that
    did not happen within `deadline_s`."""
    end = time.monotonic() + deadline_s
    while True:
        desc = await admin.describe_topics([topic])
        parts = desc[0].get("partitions", []) if desc else []
        err = desc[0].get("error_code", 0) if desc else -1
        if err == 0 and parts and all(p.get("leader", -1) >= 0 for p in parts):
            return len(parts)
        if time.monotonic() > end:
            return None
        await asyncio.sleep(poll_s)


# ---- on a started consumer -------------------------------------------------------------------


async def end_offsets_of(consumer: Any, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """Each partition's end offset (the offset the next record will get)."""
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    return {tp.partition: int(offset) for tp, offset in ends.items()}


# ---- one-shot, with clients of their own -----------------------------------------------------


async def describe_cluster(
    bootstrap: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """One metadata round trip: {"cluster_id", "controller_id", "brokers": [...]}. Raises KafkaError."""
    async with admin_client(bootstrap, security, timeout_s=timeout_s) as admin:
        request = admin.describe_cluster()
        return await (request if timeout_s is None else asyncio.wait_for(request, timeout_s))


async def topic_partitions(
    bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float | None = None
) -> list[int]:
    """The partition ids of `topic`, [] when it does not exist."""
    async with admin_client(bootstrap, security, timeout_s=timeout_s) as admin:
        request = topic_partitions_of(admin, topic)
        return await (request if timeout_s is None else asyncio.wait_for(request, timeout_s))


async def end_offsets(
    bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float | None = None
) -> dict[int, int]:
    """Each partition's end offset now; {} when the topic does not exist."""
    parts = await topic_partitions(bootstrap, topic, security, timeout_s=timeout_s)
    if not parts:
        return {}
    async with offsets_consumer(bootstrap, security, timeout_s=timeout_s) as consumer:
        return await end_offsets_of(consumer, topic, parts)


async def delete_records(
    bootstrap: str, topic: str, before: dict[int, int], security: KafkaSecurity = PLAINTEXT
) -> None:
    """Delete each partition's records below `before[partition]`, as retention deletes old segments."""
    async with admin_client(bootstrap, security) as admin:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(before_offset=offset) for p, offset in before.items()}
        )
