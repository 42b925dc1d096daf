"""Faults with ground truth through the whole pipeline: one seeded fleet run with every fault kind
at once (malformed records, late and out-of-order events, skewed device clocks, re-sent events),
then `devicestream verify` (the topic reconciles) and `devicestream verify --run <id>` (the
pipeline did with each injected record what the ledger says it must) exit 0; the same ledger
tampered with makes `verify --run` exit non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from pydantic import ValidationError

from contract.verify_report import RunReport
from devicestream.kafka_broker import log_tail
from tests.e2e.conftest import Stack
from tests.helpers import REPO_ROOT

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
    res = subprocess.run(
        [sys.executable, "-m", "devicestream", "verify", "--run", run_id, "--json", "--wait", str(wait_s)],
        env={**os.environ, **stack.env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=wait_s + 120,
    )
    try:
        return res.returncode, RunReport.model_validate_json(res.stdout)
    except ValidationError:
        raise AssertionError(f"verify --run did not answer ({res.returncode}): {res.stdout}\n{res.stderr}") from None


def test_every_fault_kind_at_once_checked_against_the_ledger(stack: Stack) -> None:
    # Through the gateway, like any client: the start model (contract/api.py) carries the new fields.
    r = httpx.post(f"{stack.gateway}/generator/start", json=RUN, timeout=10)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    status = stack.wait_run_ended()
    assert status.state == "completed" and status.acknowledged == RUN["count"], status

    ledger: Path = stack.data / "generator" / "runs" / f"{run_id}.jsonl"
    lines = [json.loads(x) for x in ledger.read_text().splitlines()]
    kinds = {x["kind"] for x in lines if x["type"] == "fault"}
    assert kinds == {"invalid", "late", "skewed", "resend"}, kinds
    assert lines[-1]["type"] == "end" and lines[-1]["records"] == RUN["count"]

    stack.verify()  # the topic reconciles with merged.csv and the rejects, faults included
    code, report = _verify_run(stack, run_id, wait_s=180)
    if code != 0:
        tails = "\n".join(f"--- {p}:\n{log_tail(p, 25)}" for p in stack.logs("spark", "merger", "generator"))
        raise AssertionError(f"verify --run found problems: {report.to_json()}\n{tails}")
    assert report.ok and all(report.faults[k] > 0 for k in kinds), report

    # The same ledger with one late event's time moved by a microsecond no longer matches.
    original = ledger.read_text()
    late = next(x for x in lines if x.get("kind") == "late")
    tampered = late["event_time"][:-2] + ("1" if late["event_time"][-2] != "1" else "2") + "Z"
    ledger.write_text(original.replace(late["event_time"], tampered, 1))
    try:
        code, report = _verify_run(stack, run_id, wait_s=0)
        assert code == 1 and report.problems["timed_wrong_event_time"] >= 1, report
    finally:
        ledger.write_text(original)
