"""Delivery bookkeeping and partitioning of the run loop, without a broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from contract.events import CUSTOMER_IDS
from services.generator.producer import Generator, Metrics, Run, RunParams, partition_of_keys
from services.generator.settings import GeneratorSettings


def _generator(tmp_path: Path) -> Generator:
    return Generator(GeneratorSettings(data_dir=tmp_path, kafka_bootstrap_servers=""), Metrics(CollectorRegistry()))


async def test_failed_delivery_is_counted_and_sent_again_never_dropped(tmp_path: Path) -> None:
    gen = _generator(tmp_path)
    run = Run(id="r1", params=RunParams(rate=10), started_at=0.0)
    recs = [(b"CI00100", b"v1"), (b"CI00100", b"v2")]
    run.sent, run.in_flight, run.pending[1] = 2, 2, 0.0

    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(KafkaConnectionError("broker down"))
    gen._delivered(run, 1, 0.0, recs, failed)
    assert (run.acknowledged, run.delivery_errors, run.in_flight, run.sent) == (0, 2, 0, 2)
    assert list(run.retry) == recs
    assert "broker down" in gen.last_error
    assert not run.pending

    # the re-sent batch succeeds: acknowledged once, sent not counted twice
    run.retry.clear()
    run.in_flight, run.pending[2] = 2, 0.0
    ok = asyncio.get_running_loop().create_future()
    ok.set_result(None)
    gen._delivered(run, 2, 0.0, recs, ok)
    assert (run.acknowledged, run.delivery_errors, run.in_flight, run.sent) == (2, 2, 0, 2)
    assert gen.metrics.registry.get_sample_value("generator_events_acknowledged_total") == 2
    assert gen.metrics.registry.get_sample_value("generator_delivery_errors_total") == 2


def test_partitioning_matches_kafkas_default_partitioner() -> None:
    for n in (1, 3, 7):
        parts = list(range(n))
        mapping = partition_of_keys(n)
        assert set(mapping) == {c.encode() for c in CUSTOMER_IDS}
        for key, part in mapping.items():
            assert part == DefaultPartitioner()(key, parts, parts)


def test_status_fields_when_idle(tmp_path: Path) -> None:
    st = _generator(tmp_path).status()
    assert st["state"] == "idle" and st["run"] is None
    assert (st["sent"], st["acknowledged"], st["invalid"], st["delivery_errors"]) == (0, 0, 0, 0)
    assert st["offset_first"] is None and st["offset_last"] is None


def test_rate_over_windows() -> None:
    run = Run(id="r", params=RunParams(rate=10), started_at=0.0)
    for t in range(0, 21):
        run.samples.append((float(t), t * 100))
    run.acknowledged = 2000
    assert run.rate_over(1.0, 20.0) == 100.0
    assert run.rate_over(10.0, 20.0) == 100.0
