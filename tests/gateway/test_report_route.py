"""GET /report through the real gateway (it runs `devicestream report --html-only` as a child
process), and the gateway's run series recorded while a run goes (the real generator and merger,
a stand-in Spark job)."""

from __future__ import annotations

import time

import httpx
import pytest

from contract.ledger import LedgerEnd, LedgerRun, dump_line
from contract.run_series import SeriesHeader, SeriesSample, read_series, series_path
from contract.run_series import dump_line as dump_sample
from tests.documents import run_of
from tests.gateway.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _write_run(s: Stack, run_id: str) -> None:
    runs = s.layout.generator_runs
    runs.mkdir(parents=True, exist_ok=True)
    header = LedgerRun(run_id=run_id, topic=s.topic, started_at=time.time() - 30, seed=3, params={"rate": 50.0})
    (runs / f"{run_id}.jsonl").write_bytes(dump_line(header) + dump_line(LedgerEnd(state="completed", records=0)))
    s.layout.run_series.mkdir(parents=True, exist_ok=True)
    samples = [
        SeriesSample(
            t=header.started_at + i,
            rate_requested=50.0,
            rate_achieved=48.0 + i,
            lag_offsets=i,
            spark_batch_id=i,
            spark_batch_duration_ms=120,
            freshness_last_s=0.4,
        )
        for i in range(5)
    ]
    lines = [SeriesHeader(run_id=run_id, params={"rate": 50.0}), *samples]
    series_path(s.layout.run_series, run_id).write_bytes(b"".join(dump_sample(x) for x in lines))


def test_report_served_as_html(bare_stack: Stack) -> None:
    s = bare_stack
    _write_run(s, "abc123")
    s.start("gateway")
    r = httpx.get(f"{s.url}/report?run=abc123", timeout=180)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert 'data-run="abc123"' in r.text and 'data-chart="rate" data-points="5"' in r.text
    assert httpx.get(f"{s.url}/report", timeout=180).status_code == 200, "the last run without ?run"
    missing = httpx.get(f"{s.url}/report?run=ffff00", timeout=180)
    assert missing.status_code == 404 and "ffff00" in missing.json()["detail"]
    bad = httpx.get(f"{s.url}/report?run=../../etc", timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "run"]


def test_the_gateway_records_a_runs_series(stack: Stack) -> None:
    r = httpx.post(f"{stack.url}/generator/start", json={"rate": 200, "duration_s": 4}, timeout=10)
    assert r.status_code == 202, r.text
    run_id = run_of(r).id
    path = series_path(stack.layout.run_series, run_id)

    def sampled() -> bool:
        series = read_series(path)
        return series is not None and len([x for x in series.during_run() if x.sent]) >= 3

    wait_for(sampled, 60, "three samples of the run", logs=stack.logs())
    series = read_series(path)
    assert series is not None and series.header is not None and series.header.run_id == run_id
    assert series.header.params is not None and series.header.params.rate == 200
    assert series.baseline() is not None, "the snapshot before the run, for the counters' baseline"
    assert all(b.t > a.t for a, b in zip(series.samples, series.samples[1:], strict=False))
