"""/status verdicts with real processes: a component stopped -> degraded/down with the right
reason, back to ok when it returns; /metrics reflects it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from contract.pipeline_status import PipelineStatus
from tests.gateway.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_merger_stopped_is_down_then_ok(stack: Stack) -> None:
    stack.stop("merger")
    t0 = time.monotonic()
    r = stack.status()
    assert time.monotonic() - t0 < 5
    assert r.status_code == 503
    doc = PipelineStatus.model_validate_json(r.content)
    assert doc.overall == "down"
    assert doc.components.merger.status == "down"
    assert any(x.startswith("merger:") for x in doc.reasons), doc.reasons
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert 'devicestream_component_up{component="merger"} 0.0' in metrics
    assert 'devicestream_component_up{component="kafka"} 1.0' in metrics
    stack.start("merger")
    doc = stack.wait_overall("ok")
    assert doc.components.merger.reachable
    assert 'devicestream_component_up{component="merger"} 1.0' in httpx.get(f"{stack.url}/metrics").text


def test_generator_stopped_is_degraded(stack: Stack) -> None:
    stack.stop("generator")
    r = stack.status()
    assert r.status_code == 200
    doc = PipelineStatus.model_validate_json(r.content)
    assert doc.overall == "degraded" and doc.components.generator.status == "degraded"
    assert any(x.startswith("generator:") for x in doc.reasons)
    stack.start("generator")
    stack.wait_overall("ok")


def test_spark_killed_is_down_then_ok(stack: Stack) -> None:
    # SIGKILL leaves progress.json saying "running": the gateway sees the driver pid gone
    stack.procs["spark"].kill()
    stack.procs.pop("spark")
    doc = stack.wait_overall("down", reason="spark: driver pid")
    assert stack.status().status_code == 503
    assert doc.components.spark.pid_alive is False
    stack.start("spark")
    stack.wait_overall("ok")


def test_spark_stale_while_input_waits_then_missing_then_ok(stack: Stack) -> None:
    # a frozen job (alive, no progress) is only stale while Kafka holds events it has not read
    spark = stack.procs["spark"]
    os.kill(spark.pid, signal.SIGSTOP)
    try:
        assert stack.pipeline().overall == "ok"  # nothing waiting: idle is fine
        assert httpx.post(f"{stack.url}/generator/start", json={"rate": 50}).status_code == 202
        doc = stack.wait_overall("down", timeout=20, reason="spark: stale")
        assert doc.components.spark.stale is True
        assert (doc.components.spark.pending_input or 0) > 0
    finally:
        os.kill(spark.pid, signal.SIGCONT)
    stack.wait_overall("ok", timeout=20)
    httpx.post(f"{stack.url}/generator/stop")

    # no progress file at all while events wait -> down; and no file with nothing waiting would be
    # degraded (see the unit tests)
    stack.stop("spark")
    stack.layout.spark_progress.unlink()
    httpx.post(f"{stack.url}/generator/start", json={"rate": 50, "count": 20})
    stack.wait_overall("down", timeout=20, reason="spark: no progress file")
    stack.start("spark")
    doc = stack.wait_overall("ok", timeout=30)
    assert doc.components.spark.present and not doc.components.spark.stale


def test_kafka_section(stack: Stack) -> None:
    httpx.post(f"{stack.url}/generator/start", json={"rate": 100, "count": 60})

    def all_in() -> PipelineStatus | None:
        d = stack.pipeline()
        return d if d.components.kafka.total_events == 60 and d.accounting.drained else None

    doc = wait_for(all_in, 30, "60 events in Kafka and drained", logs=stack.logs())
    k = doc.components.kafka
    assert k.status == "ok" and k.brokers == 1 and k.partitions == 3
    assert set(k.end_offsets) == {"0", "1", "2"} and sum(k.end_offsets.values()) == 60
    assert doc.accounting.events_in_kafka == 60 and doc.accounting.consistent is True
    metrics = httpx.get(f"{stack.url}/metrics").text
    merged = doc.accounting.rows_merged  # an event has one to three readings, a row each
    assert merged is not None and 60 <= merged <= 180
    assert f'devicestream_stage_records{{stage="rows_merged"}} {float(merged)}' in metrics
    assert "devicestream_end_to_end_lag_seconds" in metrics
