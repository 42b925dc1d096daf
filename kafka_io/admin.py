"""Kafka administration, the one place for it: admin clients opened and closed around a block,
the cluster's brokers, a topic's partitions, creating a topic, setting its configs, waiting for its
partition leaders, each partition's end offset, deleting old records (as retention does), waiting
until a cluster is ready, ensuring the events topic. Used by the launcher's broker (topic creation,
readiness), the generator (topic creation, offset
recovery), `devicestream verify`, the gateway's /status probe and the tests. Clients come from
kafka_io/clients.py (`make_admin`, `make_consumer`: security options included).

The functions taking an `admin` or a `consumer` work on a started client, so one client serves a
sequence of requests; the ones taking `bootstrap` open and close their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from contract.kafka import PLAINTEXT, KafkaSecurity
from kafka_io.clients import make_admin, make_consumer
from kafka_io.reachability import failure_reason

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker could not be prepared, started or reached; the message says why."""


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


@asynccontextmanager
async def admin_and_consumer(
    bootstrap: str, security: KafkaSecurity = PLAINTEXT, *, close_timeout_s: float = 1.0, **options: Any
) -> AsyncIterator[tuple[Any, Any]]:
    """A started admin client and a started consumer without a group, started together (one
    handshake's time, not two), for a caller that bounds the whole with its own deadline (the
    gateway's /status probe). Both are closed on the way out, each within `close_timeout_s`, a
    failed close ignored: the caller has its answer by then."""
    admin = make_admin(bootstrap, security, **options)
    consumer = make_consumer(bootstrap, security, group_id=None, **options)
    try:
        await asyncio.gather(admin.start(), consumer.start())
        yield admin, consumer
    finally:
        for close in (consumer.stop, admin.close):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(close_timeout_s):
                    await close()


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


# ---- readiness and the events topic (the launcher, the tests' brokers, bench) ----------------


async def wait_until_ready(
    bootstrap: str,
    deadline_s: float,
    *,
    min_brokers: int = 1,
    alive: callable | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> dict:
    """Poll a metadata request until it succeeds with `min_brokers` brokers, or raise BrokerError."""
    end = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < end:
        if alive is not None and not alive():
            raise BrokerError("the Kafka process exited before it became ready")
        try:
            timeout_s = min(5.0, max(0.5, end - time.monotonic()))
            meta = await describe_cluster(bootstrap, timeout_s=timeout_s, security=security)
            if len(meta.get("brokers", [])) >= min_brokers:
                return meta
            last = BrokerError(f"{len(meta.get('brokers', []))} of {min_brokers} brokers registered")
        except (TimeoutError, KafkaError, OSError) as e:
            last = e
        await asyncio.sleep(0.25)
    reason = await failure_reason(last, bootstrap, security) if last is not None else "no answer"
    raise BrokerError(f"Kafka at {bootstrap} not ready within {deadline_s:.0f}s: {reason}")


def topic_configs(
    *, min_insync_replicas: int | None = None, retention_bytes: int | None = None, segment_bytes: int | None = None
) -> dict[str, str]:
    """The events topic's own configs. retention.bytes bounds each partition's log (Kafka deletes
    whole closed segments, so a partition holds at most retention.bytes + segment.bytes)."""
    configs = {
        "min.insync.replicas": min_insync_replicas,
        "retention.bytes": retention_bytes,
        "segment.bytes": segment_bytes,
    }
    return {k: str(v) for k, v in configs.items() if v is not None}


async def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    *,
    min_insync_replicas: int | None = None,
    retention_bytes: int | None = None,
    segment_bytes: int | None = None,
    deadline_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    """Create `topic` if missing (an existing one gets the same configs) and wait until every
    partition has a leader. Returns its partition count (an existing topic keeps its own)."""
    configs = topic_configs(
        min_insync_replicas=min_insync_replicas, retention_bytes=retention_bytes, segment_bytes=segment_bytes
    )
    async with admin_client(bootstrap, security, timeout_s=10) as admin:
        if await create_topic(admin, topic, partitions, replication_factor, configs):
            log.info("created topic %s (%d partitions, rf %d, %s)", topic, partitions, replication_factor, configs)
        elif configs and (error := await alter_topic_configs(admin, topic, configs)) is not None:
            raise BrokerError(f"cannot set {configs} on topic {topic}: {error}")
        n = await wait_for_leaders(admin, topic, deadline_s)
        if n is None:
            raise BrokerError(f"topic {topic} has no leader for every partition after {deadline_s}s")
        return n
