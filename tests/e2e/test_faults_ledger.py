"""Faults with ground truth through the whole pipeline: one seeded fleet run with every fault kind
at once (malformed records, late and out-of-order events, skewed device clocks, re-sent events),
then `devicestream verify` (the topic reconciles) and `devicestream verify --run <id>` (the
pipeline did with each injected record what the ledger says it must) exit 0; the same ledger
tampered with makes `verify --run` exit non-zero. Two runs of the same seed (the same eventIds,
re-sends included) each pass `verify --run`: a run's check counts its own rows only. And the
broker frozen past the producer's request timeout while the producer is replaced: no event is in
Kafka twice, and `devicestream verify` exits 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from contract.api import Run
from contract.layout import DataLayout
from contract.ledger import ledger_path, read_ledger
from contract.verify_report import RunReport
from devicestream.processes import log_tail
from tests.e2e.conftest import Stack
from tests.helpers import devicestream_cli

pytestmark = pytest.mark.integration

RUN = {
    "rate": 1000,
    "count": 6000,
    "seed": 20,
    "fleet": {"customers": 8, "devices_per_customer": 3, "silent_probability": 0.05, "wake_probability": 0.3},
    "faults": {
        "invalid_ratio": 0.02,
        "late_ratio": 0.05,
        "max_lateness_s": 120,
        "skewed_devices_ratio": 0.3,
        "max_skew_s": 30,
        "resend_ratio": 0.03,
    },
}


def _verify_run(stack: Stack, run_id: str, wait_s: float) -> tuple[int, RunReport]:
    res = devicestream_cli(
        "verify", "--run", run_id, "--json", "--wait", str(wait_s), env=stack.env, timeout=wait_s + 120
    )
    try:
        return res.returncode, RunReport.model_validate_json(res.stdout)
    except ValidationError:
        raise AssertionError(f"verify --run did not answer ({res.returncode}): {res.stdout}\n{res.stderr}") from None


def test_every_fault_kind_at_once_checked_against_the_ledger(stack: Stack) -> None:
    # Through the gateway, like any client: the start model (contract/api.py) carries the new fields.
    r = httpx.post(f"{stack.gateway}/generator/start", json=RUN, timeout=10)
    assert r.status_code == 202, r.text
    run_id = Run.model_validate_json(r.content).id
    status = stack.wait_run_ended()
    assert status.state == "completed" and status.acknowledged == RUN["count"], status

    ledger = ledger_path(DataLayout(stack.data).generator_runs, run_id)
    run = read_ledger(ledger)
    kinds = {f.kind for f in run.faults}
    assert kinds == {"invalid", "late", "skewed", "resend"}, kinds
    assert run.end is not None and run.end.records == RUN["count"]

    stack.verify()  # the topic reconciles with merged.csv and the rejects, faults included
    code, report = _verify_run(stack, run_id, wait_s=180)
    if code != 0:
        tails = "\n".join(f"--- {p}:\n{log_tail(p, 25)}" for p in stack.logs("spark", "merger", "generator"))
        raise AssertionError(f"verify --run found problems: {report.to_json()}\n{tails}")
    assert report.ok and all(report.faults[k] > 0 for k in kinds), report

    # The same ledger with one late event's time moved by a microsecond no longer matches.
    original = ledger.read_text()
    late_time = next(f.event_time for f in run.faults if f.kind == "late")
    assert late_time is not None
    tampered = late_time[:-2] + ("1" if late_time[-2] != "1" else "2") + "Z"
    ledger.write_text(original.replace(late_time, tampered, 1))
    try:
        code, report = _verify_run(stack, run_id, wait_s=0)
        assert code == 1 and report.problems["timed_wrong_event_time"] >= 1, report
    finally:
        ledger.write_text(original)


TWICE = {"rate": 1000, "count": 3000, "seed": 21, "faults": {"invalid_ratio": 0.01, "resend_ratio": 0.05}}


def test_two_runs_of_the_same_seed_each_pass_their_own_check(stack: Stack) -> None:
    ids = []
    for _ in range(2):
        r = httpx.post(f"{stack.gateway}/generator/start", json=TWICE, timeout=10)
        assert r.status_code == 202, r.text
        ids.append(Run.model_validate_json(r.content).id)
        status = stack.wait_run_ended()
        assert status.state == "completed" and status.acknowledged == TWICE["count"], status

    runs = [read_ledger(ledger_path(DataLayout(stack.data).generator_runs, i)) for i in ids]
    resent = [{f.event_id for f in run.faults if f.kind == "resend"} for run in runs]
    assert resent[0] and resent[0] == resent[1]  # the same seed: the same events re-sent
    spans = [run.event_offsets() for run in runs]
    assert spans[0] is not None and spans[1] is not None and spans[0][1] < spans[1][0], spans

    stack.verify()
    for run_id in ids:
        code, report = _verify_run(stack, run_id, wait_s=180)
        assert code == 0, report.to_json()
        assert report.faults["resend"] > 0


def test_a_frozen_broker_and_a_replaced_producer_write_no_event_twice(stack: Stack, tmp_path: Path) -> None:
    """Last in this module: a generator engine in this process (its own offsets state, continuing
    after the topic's newest eventOffset) writes to the stack's topic while the stack's generator is
    idle; the stack's broker is frozen past the request timeout and the engine's producer replaced
    (tests/generator/test_frozen_broker_once.py). Spark and the merger take it all; verify exits 0."""
    from tests.generator.test_frozen_broker_once import COUNT, frozen_broker_run

    topic = stack.generator_status().topic
    assert topic is not None
    gen, _run_id = asyncio.run(frozen_broker_run(stack.bootstrap, stack.pid("kafka"), topic, tmp_path / "gen"))
    sample = gen.metrics.registry.get_sample_value
    assert sample("generator_producer_replacements_total") == 1
    assert (sample("generator_events_found_written_total") or 0) > 0  # the batch the frozen broker wrote
    report = stack.verify()
    assert (report.rows_duplicated, report.offsets_reused) == (0, 0)
    assert report.records >= COUNT
