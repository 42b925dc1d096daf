"""Delivery bookkeeping of the engine and its status document, without a broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from services.generator.engine import Engine
from services.generator.errors import KafkaUnavailableError
from services.generator.metrics import Metrics
from services.generator.run import Run, RunParams
from services.generator.settings import GeneratorSettings


def _engine(tmp_path: Path) -> Engine:
    return Engine(GeneratorSettings(data_dir=tmp_path, kafka_bootstrap_servers=""), Metrics(CollectorRegistry()))


async def test_failed_delivery_is_counted_and_sent_again_never_dropped(tmp_path: Path) -> None:
    gen = _engine(tmp_path)
    run = Run.begin(RunParams(rate=10), max_lag_s=1.0)
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


def test_status_fields_when_idle(tmp_path: Path) -> None:
    st = _engine(tmp_path).status()
    assert st["state"] == "idle" and st["run"] is None
    assert (st["sent"], st["acknowledged"], st["invalid"], st["delivery_errors"]) == (0, 0, 0, 0)
    assert st["offset_first"] is None and st["offset_last"] is None


async def test_a_stalled_run_is_degraded_and_recovers(tmp_path: Path) -> None:
    gen = _engine(tmp_path)
    gen.producer = object()  # type: ignore[assignment]  # connected (the monitor only looks at None)
    run = Run.begin(RunParams(rate=10), max_lag_s=1.0)
    run.pending[1] = 0.0  # a batch handed over at t = 0, unacknowledged
    gen._update_degraded(run, gen.settings.degraded_after_s + 1, None)
    assert run.state == "degraded" and run.active
    assert gen.last_error is not None and "no acknowledgement from Kafka" in gen.last_error
    run.pending.clear()
    gen._update_degraded(run, 100.0, None)
    assert run.state == "running"
    run.change_state("completed")
    gen._update_degraded(run, 200.0, "Kafka unreachable: refused")
    assert run.state == "completed"  # an ended run stays ended


def test_a_run_is_refused_before_kafka_is_connected(tmp_path: Path) -> None:
    with pytest.raises(KafkaUnavailableError):
        _engine(tmp_path).start_run(RunParams(rate=10))
