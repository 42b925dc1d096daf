"""Where keys go, the producer's settings, and the TCP probe (loopback only)."""

from __future__ import annotations

import asyncio
import socket

from aiokafka.partitioner import DefaultPartitioner

from contract.events import CUSTOMER_IDS
from services.generator.connection import _producer_kwargs, partition_of_keys, probe
from services.generator.settings import GeneratorSettings


def test_partitioning_matches_kafkas_default_partitioner() -> None:
    for n in (1, 3, 7):
        parts = list(range(n))
        mapping = partition_of_keys(n)
        assert set(mapping) == {c.encode() for c in CUSTOMER_IDS}
        for key, part in mapping.items():
            assert part == DefaultPartitioner()(key, parts, parts)


def test_the_producer_is_idempotent_with_acks_all() -> None:
    kw = _producer_kwargs(GeneratorSettings(kafka_bootstrap_servers="h:1"), "h:1")
    assert (kw["acks"], kw["enable_idempotence"], kw["client_id"]) == ("all", True, "devicestream-generator")


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
