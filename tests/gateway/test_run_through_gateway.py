"""Generator control and status through the gateway, with the real gateway process in front of
the real generator and merger, a stand-in Spark job and a real Kafka topic."""

from __future__ import annotations

import httpx
import pytest

from contract.api import GeneratorStatus, Run
from contract.pipeline_status import PipelineStatus
from tests.documents import generator_status
from tests.gateway.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_start_via_gateway_shows_run_in_status(stack: Stack) -> None:
    r = httpx.post(f"{stack.url}/generator/start", json={"rate": 200}, timeout=10)
    assert r.status_code == 202, r.text
    run = Run.model_validate_json(r.content)
    assert run.state == "running" and run.params.rate == 200
    assert run.params.invalid_ratio == 0.0  # one default, the generator's (contract/api.py)

    def run_visible() -> PipelineStatus | None:
        doc = stack.pipeline()
        # the generator's own status document, passed through next to the gateway's verdict
        gen = doc.components.generator
        if gen.state == "running" and gen.run and gen.run.id == run.id and doc.components.kafka.total_events:
            return doc
        return None

    doc = wait_for(run_visible, 20, "the run in /status with events in Kafka", logs=stack.logs())
    assert doc.overall == "ok", doc.reasons
    kafka = doc.components.kafka
    assert kafka.reachable and kafka.brokers == 1 and kafka.partitions == 3
    assert kafka.topic == stack.topic

    # a second start is refused by the generator: its 409 and message come back intact
    again = httpx.post(f"{stack.url}/generator/start", json={"rate": 5}, timeout=10)
    assert again.status_code == 409 and run.id in again.json()["detail"]

    rate = httpx.put(f"{stack.url}/generator/rate", json={"rate": 300}, timeout=10)
    assert rate.status_code == 200 and Run.model_validate_json(rate.content).params.rate == 300

    stopped = httpx.post(f"{stack.url}/generator/stop", timeout=10)
    final = GeneratorStatus.model_validate_json(stopped.content)
    assert stopped.status_code == 200 and final.state == "stopped"
    sent = final.acknowledged

    # once drained, the stages agree: Kafka events == Spark input rows, Spark rows == rows merged
    # (an event has one to three readings, a row each)
    def drained() -> PipelineStatus | None:
        d = stack.pipeline()
        return d if d.accounting.drained else None

    doc = wait_for(drained, 30, "the pipeline to drain", logs=stack.logs())
    acc = doc.accounting
    assert acc.consistent is True, acc
    assert acc.events_in_kafka == sent == acc.spark_input_rows
    assert sent <= acc.spark_rows_out == acc.rows_merged <= 3 * sent
    assert doc.overall == "ok"


def test_generator_validation_and_passthrough(stack: Stack) -> None:
    # the gateway validates against its documented model: 422 naming the field
    # (the generator's own model, from contract/api.py: strict, so "5" is not a rate and 1.5 not a seed)
    bad = ({"rate": 0}, {"rate": "fast"}, {"rate": "5"}, {"rate": 10, "seed": 1.5}, {"rate": 10, "bogus": 1})
    for body in (*bad, {"rate": 10, "count": 0}, {"rate": 10, "invalid_ratio": 2}):
        r = httpx.post(f"{stack.url}/generator/start", json=body, timeout=10)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"][0] == "body"
    r = httpx.post(f"{stack.url}/generator/start", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    # the generator's own limit (max rate) is its to enforce: its 422 comes through unchanged
    r = httpx.post(f"{stack.url}/generator/start", json={"rate": 10_000_000}, timeout=10)
    direct = httpx.post(f"{stack.generator_url}/generator/start", json={"rate": 10_000_000}, timeout=10)
    assert r.status_code == direct.status_code == 422 and r.json() == direct.json()
    # no active run: the generator's 409 for a rate change passes through
    r = httpx.put(f"{stack.url}/generator/rate", json={"rate": 5}, timeout=10)
    direct = httpx.put(f"{stack.generator_url}/generator/rate", json={"rate": 5}, timeout=10)
    assert r.status_code == direct.status_code == 409 and r.json() == direct.json()
    assert r.json()["detail"].startswith("no active run")
    # generator status passes through
    assert generator_status(stack.url).state == "idle"
    # oversized body: 413 before anything is parsed or forwarded
    r = httpx.post(f"{stack.url}/generator/start", content=b"x" * 200_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
