"""The generator's Kafka connection: its producer (the one place it is built), how to tell the
producer died for good or must be replaced, and creating the topic when asked to (its
reachability probe is kafka_io.reachability.tcp_probe).

Retries keep the idempotent producer's sequence. aiokafka 0.14 (the version pinned) retries a
batch of an idempotent producer with its producer id and sequence number until the broker answers,
so a batch the broker wrote before an answer was lost is acknowledged once (DuplicateSequenceNumber
counts as delivered) whatever the request timeout. One path breaks that: a batch that waited longer
than request_timeout_ms while its partition had no leader is failed after a sequence number was
given to it; when the broker had written it, it is sent again by us; when not, the broker refuses
every later batch of the partition (OutOfOrderSequenceNumber) and the producer is useless
(aio-libs/aiokafka#1017). `make_producer` therefore never lets a batch expire: it waits for its
leader. What is left (the sender dead, sequences out of step) replaces the producer, and what the
old one had not confirmed is settled against Kafka before anything is sent again (in_doubt.py)."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from contract.kafka import KafkaSecurity
from kafka_io.admin import admin_client, create_topic
from kafka_io.clients import aiokafka_options
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)


def _producer_kwargs(settings: GeneratorSettings, bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "client_id": "devicestream-generator",
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_size,
        "max_request_size": max(settings.max_batch_size * 4, 1_048_576),
        "request_timeout_ms": settings.request_timeout_ms,
        "retry_backoff_ms": settings.retry_backoff_ms,
        **aiokafka_options(settings.kafka_security),
    }


def make_producer(settings: GeneratorSettings, bootstrap: str) -> AIOKafkaProducer:
    """The one place the generator's Kafka producer is built. Its batches never expire (see the
    module docstring): aiokafka uses request_timeout_ms as the batch lifetime too, and a batch is
    only ever expired while its partition has no leader."""
    producer = AIOKafkaProducer(**_producer_kwargs(settings, bootstrap))
    producer._message_accumulator._batch_ttl = math.inf  # aiokafka 0.14 has no setting for it
    return producer


#: Delivery failures that leave the producer's idempotent state out of step with the broker's: every
#: later batch of the partition would fail too, so the producer is replaced (a new producer id).
DESYNCHRONISED: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)


def desynchronised(exc: BaseException) -> bool:
    return isinstance(exc, DESYNCHRONISED)


def sender_failure(producer: AIOKafkaProducer) -> BaseException | None:
    """Why the producer's sender task ended, None while it runs. aiokafka ends it for good on a
    fatal error (OutOfOrderSequenceNumber when a batch expired while its partition had no leader,
    ProducerFenced): every later send then waits forever, so the producer must be replaced."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if task is None or not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError("the producer's sender task was cancelled")
    return task.exception() or KafkaError("the producer's sender task ended")


async def create_topic_if_missing(bootstrap: str, topic: str, partitions: int, security: KafkaSecurity) -> None:
    """GENERATOR_CREATE_TOPIC: create `topic` (replication 1, broker defaults) unless it exists."""
    async with admin_client(bootstrap, security, timeout_s=10) as admin:
        if topic not in await admin.list_topics() and await create_topic(admin, topic, partitions):
            log.info("created topic", extra={"topic": topic, "partitions": partitions})
