"""The engine without a broker: its status document, degraded state, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from contract.api import RunParams
from services.generator.engine import Engine
from services.generator.errors import KafkaUnavailableError
from services.generator.metrics import Metrics
from services.generator.run import LiveRun
from services.generator.settings import GeneratorSettings


def _engine(tmp_path: Path) -> Engine:
    return Engine(GeneratorSettings(data_dir=tmp_path, kafka_bootstrap_servers=""), Metrics(CollectorRegistry()))


def test_status_fields_when_idle(tmp_path: Path) -> None:
    st = _engine(tmp_path).status()
    assert st.state == "idle" and st.run is None
    assert (st.sent, st.acknowledged, st.invalid, st.delivery_errors) == (0, 0, 0, 0)
    assert st.offset_first is None and st.offset_last is None


async def test_a_stalled_run_is_degraded_and_recovers(tmp_path: Path) -> None:
    gen = _engine(tmp_path)
    gen.producer = object()  # type: ignore[assignment]  # connected (the monitor only looks at None)
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
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
