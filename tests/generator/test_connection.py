"""The producer's settings, and the TCP probe the generator uses (loopback only)."""

from __future__ import annotations

import asyncio
import socket

from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.producer.message_accumulator import MessageBatch
from aiokafka.structs import TopicPartition

from kafka_io.reachability import tcp_probe as probe
from services.generator.connection import _producer_kwargs, desynchronised, make_producer
from services.generator.settings import GeneratorSettings


def test_the_producer_is_idempotent_with_acks_all() -> None:
    kw = _producer_kwargs(GeneratorSettings(kafka_bootstrap_servers="h:1"), "h:1")
    assert (kw["acks"], kw["enable_idempotence"], kw["client_id"]) == ("all", True, "devicestream-generator")


async def test_a_batch_never_expires_so_its_sequence_number_is_kept() -> None:
    """aiokafka 0.14 fails a batch older than its TTL while its partition has no leader, after giving
    it a sequence number (connection.py): the generator's producer gives its batches no TTL."""
    settings = GeneratorSettings(kafka_bootstrap_servers="h:1", request_timeout_ms=1000)
    producer = make_producer(settings, "h:1")
    ttl = producer._message_accumulator._batch_ttl
    batch = MessageBatch(TopicPartition("t", 0), producer.create_batch(), ttl, 0)
    batch._ctime -= 10**9  # waited a very long time
    assert not batch.expired()


def test_a_sequence_out_of_step_is_told_apart_from_a_passing_failure() -> None:
    assert desynchronised(OutOfOrderSequenceNumber()) and desynchronised(UnknownProducerId())
    assert not desynchronised(KafkaConnectionError())


def test_probe_says_why_nothing_answers_and_none_when_one_server_does() -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        alive = f"127.0.0.1:{listening.getsockname()[1]}"
        error = asyncio.run(probe(dead))
        assert error is not None and error.startswith("Kafka unreachable: ") and dead in error
        assert asyncio.run(probe(f"{dead},{alive}")) is None
