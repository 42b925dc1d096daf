"""Keeps the benchmark harness working: the stages that need no running stack, with tiny sizes,
and the report writer. Seconds, not minutes; the real benchmarks run only with `make bench`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bench import report
from bench.common import Config, Figure, Spread, StageResult, Target
from bench.data import csv_rows
from bench.stage_generator import achieved_rate, rate_timeline
from bench.stage_merger import MergerSizes
from bench.stage_merger import run as run_merger
from bench.tail import MergedTail, freshness_of
from contract.csv import ROW_HEADER

TINY = MergerSizes(part_rows=200, parts=5, append_reps=2, pandas_reps=1, catchup_reps=1)


def test_merger_stage_tiny(tmp_path: Path) -> None:
    res = run_merger(Config(quick=True, out=tmp_path), TINY)
    assert res.error is None
    by_name = {f.name: f for f in res.figures}
    append, catchup = by_name["append one batch"], by_name["catch-up throughput"]
    assert append.value.n == 2 and append.baseline is not None and append.baseline.n == 1
    assert append.ratio is not None and append.ratio > 0
    assert catchup.sizes["merged_rows"] == 1000
    assert catchup.value.median > 0 and catchup.baseline is not None and catchup.baseline.median > 0
    # the bound its row checks allow, with where parse_batch's time goes (every step named, shares sum to 1)
    assert catchup.extra["checks_bound_rows_per_s"] > 0
    bound_note = next(n for n in catchup.notes if n.startswith("bound from the row checks alone"))
    for step in ("read_csv", "eventTime parse", "cutting the Kafka fields", "field counts", "offset bounds"):
        assert step in bound_note, bound_note
    growth = by_name["cost per record as work grows: catch-up (batch files merged from scratch)"]
    assert growth.sizes == {"size_a": 1000, "size_b": 4000}
    assert growth.ratio is not None and growth.ratio > 0 and growth.value.n == TINY.grow_reps
    assert growth.baseline is not None and growth.baseline.n == TINY.grow_reps  # (alternated with B)
    for f in res.figures:
        f.to_json()  # verdict computable


def test_target_verdicts() -> None:
    at_least = Target("value", ">=", 100.0, ">= 100")
    assert at_least.verdict(120) == (True, 20)
    assert at_least.verdict(80)[0] is False
    assert Target("value", "<=", 50.0, "<= 50").verdict(60) == (False, -10)
    within = Target("ratio", "within", 0.01, "+-1%")
    assert within.verdict(1.005)[0] and not within.verdict(1.02)[0]
    f = Figure("s", "n", "ms", Spread.of([10, 12, 30]), "old", Spread.of([100]), at_least, ratio_inverted=True)
    assert f.ratio == pytest.approx(100 / 12)
    assert "MISSED" in f.miss_text()


def test_achieved_rate_counts_one_window() -> None:
    ts = [1_000_000 + k * 10 for k in range(1000)]  # 100/s for 10 s, ms timestamps
    rate, n = achieved_rate(ts, 100.0, 3.0)
    assert n == 300 and rate == pytest.approx(100.0)
    assert sum(rate_timeline(ts)) == 1000


def test_tail_measures_freshness(tmp_path: Path) -> None:
    path = tmp_path / "merged.csv"
    path.write_bytes(ROW_HEADER.encode() + b"\n")
    tail = MergedTail(path, t0=0.0, poll_s=0.005)
    tail.start()
    try:
        with open(path, "ab") as f:
            f.write(csv_rows(50))
        for _ in range(400):
            if tail.rows >= 50:
                break
            time.sleep(0.005)
    finally:
        tail.stop()
    assert tail.rows == 50
    (p50, p99), rows = tail.quantiles(0, 1e12)
    assert rows == 50 and 0 < p50 <= p99
    fresh = freshness_of(csv_rows(3), 1_795_824_000.0)  # rows dated 2026-11-28T00:00:00Z
    assert np.allclose(fresh, [0.0, 0.0, 0.0], atol=0.01)


def test_report_writer(tmp_path: Path) -> None:
    figs = [
        Figure(
            "merger",
            "append",
            "ms",
            Spread.of([20.0, 25.0]),
            "pandas",
            Spread.of([900.0]),
            Target("value", "<=", 50, "<= 50 ms"),
            ratio_inverted=True,
            notes=["a note"],
        ),
        Figure("gateway", "rss", "MB", Spread.of([3.0]), "(none)", None, Target("value", "<=", 64, "< 64 MB")),
    ]
    series = {
        "t": [0.0, 1.0],
        "p50": [0.5, 0.6],
        "p99": [0.9, 1.2],
        "rate_rows": [1500, 1500],
        "rate_requested": [1000, 1000],
    }
    results = [
        StageResult("merger", figs[:1]),
        StageResult("e2e", series={"freshness": series}),
        StageResult("gateway", figs[1:]),
        StageResult("spark", error="StageError: boom"),
    ]
    doc = {
        "quick": True,
        "started_at": "now",
        "duration_s": 1.0,
        "machine": {
            "cpus_logical": 2,
            "cpu_model": "x",
            "memory_gb": 1,
            "load_avg_at_start": [0],
            "python": "3",
            "java": "17",
            "kafka": "4",
            "pyspark": "4",
            "pandas": "3",
            "polars": "1",
            "git_commit": "abc",
        },
    }
    report.write(tmp_path, doc, results)
    data = json.loads((tmp_path / "latest.json").read_text())
    assert [f["name"] for f in data["figures"]] == ["append", "rss"]
    assert data["figures"][0]["met"] is True
    md = (tmp_path / "latest.md").read_text()
    assert "| merger | append |" in md and "StageError: boom" in md
    for png in ("throughput.png", "freshness.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_spark_result_round_trip() -> None:
    """The line spark_plain.py / spark_batch.py print is what stage_spark reads back, median of the timed passes."""
    from bench.spark_result import SparkPass, SparkRunResult

    passes = [SparkPass(seconds=s, input_rows=1000) for s in (2.0, 1.0, 4.0)]
    doc = SparkRunResult(script="x.py", tasks=3, warmup=SparkPass(seconds=9.0, input_rows=1000), passes=passes)
    back = SparkRunResult.from_stdout(f"noise\n{doc.line()}\nmore noise\n")
    assert back == doc and back.median_events_per_s == 500.0 and back.input_rows == 1000
    assert SparkRunResult.from_stdout("no result here\n") is None
