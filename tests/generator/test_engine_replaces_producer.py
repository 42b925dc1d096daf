"""A producer whose sender task died for good is replaced, and runs go on (real broker)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from prometheus_client import CollectorRegistry

from services.generator.connection import sender_failure
from services.generator.engine import Engine
from services.generator.metrics import Metrics
from services.generator.run import RunParams
from services.generator.settings import GeneratorSettings
from tests.conftest import Broker
from tests.generator.conftest import read_topic

pytestmark = pytest.mark.integration


async def _until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _kill_the_sender_on_its_next_request(producer: object) -> None:
    """Fault injection into the real client: its next produce request ends as aiokafka's sender
    routine ends on a fatal error (the request's batches failed, the exception raised out of the
    routine), which is what a batch expiring while its partition had no leader leads to."""
    sender = producer._sender  # type: ignore[attr-defined]

    async def fatal(node_id: int, batches: dict) -> None:
        for batch in batches.values():
            batch.failure(exception=OutOfOrderSequenceNumber())
        raise OutOfOrderSequenceNumber()

    sender._send_produce_req = fatal


async def _scenario(bootstrap: str, topic: str, data: Path) -> list[int]:
    settings = GeneratorSettings(data_dir=data, kafka_bootstrap_servers=bootstrap, topic=topic, create_topic=False)
    gen = Engine(settings, Metrics(CollectorRegistry()))
    await gen.start()
    try:
        await _until(lambda: gen.producer is not None, 60, "the generator to connect")
        first = gen.producer
        run = gen.start_run(RunParams(rate=2000, count=4000, seed=1))
        await _until(lambda: run.acknowledged > 500, 30, "first acknowledgements")
        _kill_the_sender_on_its_next_request(first)

        await _until(lambda: not run.active, 90, f"the run to end (last error: {gen.last_error})")
        assert run.state == "completed", gen.last_error
        assert sender_failure(first) is not None and gen.producer is not first
        assert run.acknowledged == 4000 and run.delivery_errors > 0

        second = gen.start_run(RunParams(rate=2000, count=500, seed=2))
        await _until(lambda: not second.active, 30, "the next run to end")
        assert (second.state, second.acknowledged) == ("completed", 500)
        return [run.offset_first, second.offset_last]
    finally:
        await gen.close()


def test_a_dead_sender_is_replaced_and_nothing_is_lost(kafka: Broker, tmp_path: Path) -> None:
    topic = kafka.new_topic()
    first, last = asyncio.run(_scenario(kafka.bootstrap, topic, tmp_path))
    offsets = Counter(r.event["eventOffset"] for r in read_topic(kafka.bootstrap, topic))
    assert set(offsets) == set(range(first, last + 1))  # every event delivered
