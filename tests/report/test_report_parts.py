"""The report's pure parts and the gateway's series recorder on real files: a series file is
written, bounded (thinned), torn lines are skipped, it is removed with its ledger; the figures and
the page come from documents (no stack)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from contract.api import RunParams
from contract.ledger import Ledger, LedgerEnd, LedgerFault, LedgerRun
from contract.pipeline_status import PipelineStatus
from contract.run_series import RunSeries, SeriesSample, parse_series, read_series, series_path, thin
from contract.verify_report import RunReport
from devicestream.report.figures import (
    Outcome,
    ReportFigures,
    asked_of,
    device_table,
    outcome,
    quantile,
    reject_reasons,
)
from devicestream.report.page import render_page
from services.gateway.series import SeriesRecorder, sample_of
from services.gateway.settings import GatewaySettings


def status_doc(
    t: float, run: dict | None, *, sent: int = 0, batch: int = 0, rows_in: int = 0, drained: bool = False
) -> PipelineStatus:
    gen = {
        "status": "ok",
        "reachable": True,
        "url": "http://g",
        "state": "running" if run else "idle",
        "run": run,
        "sent": sent,
        "acknowledged": sent,
        "rate_1s": 100.0,
        "rate_requested": 120.0,
        "offset_first": 10_000 if run else None,
        "offset_last": 10_000 + sent if run else None,
    }
    spark = {
        "status": "ok",
        "progress_file": "p",
        "present": True,
        "batchId": batch,
        "batchDurationMs": 200 + batch,
        "offsetsBehindLatest": 5,
        "totals": {"inputRows": rows_in, "rowsOut": rows_in, "rejects": 1},
    }
    merger = {
        "status": "ok",
        "reachable": True,
        "url": "http://m",
        "rows_merged": rows_in,
        "freshness": {"last_s": 0.5, "p50_s": 0.4, "p99_s": 0.9},
    }
    kafka = {
        "status": "ok",
        "reachable": True,
        "bootstrap": "127.0.0.1:1",
        "brokers": 1,
        "topic": "t",
        "partitions": 3,
        "total_events": rows_in,
    }
    return PipelineStatus.model_validate(
        {
            "overall": "ok",
            "reasons": [],
            "checked_at": t,
            "accounting": {"drained": drained},
            "lag": {"kafka_offsets_behind": 7},
            "components": {"kafka": kafka, "generator": gen, "spark": spark, "merger": merger},
        }
    )


#: A generator run as /generator/status shows it (tests change its id, state and times).
RUN = {"id": "r", "state": "running", "started_at": 1.0, "params": {"rate": 120.0}}


def recorder(tmp_path: Path, **env: object) -> SeriesRecorder:
    settings = GatewaySettings(data_dir=tmp_path, **env)
    return SeriesRecorder(settings, status=None)  # type: ignore[arg-type]  # observe() only


def test_sample_reads_each_component() -> None:
    s = sample_of(status_doc(10.0, {**RUN, "id": "abc", "state": "running"}, sent=7, batch=3, rows_in=40))
    assert (s.sent, s.rate_requested, s.rate_achieved) == (7, 120.0, 100.0)
    assert (s.spark_batch_id, s.spark_batch_duration_ms, s.spark_input_rows_total) == (3, 203, 40)
    assert (s.lag_offsets, s.spark_offsets_behind_latest) == (7, 5)
    assert (s.rows_merged, s.freshness_p50_s, s.freshness_p99_s) == (40, 0.4, 0.9)


def test_recorder_writes_a_baseline_then_samples_and_thins(tmp_path: Path) -> None:
    rec = recorder(tmp_path, series_max_points=10)
    (tmp_path / "generator" / "runs").mkdir(parents=True)
    (tmp_path / "generator" / "runs" / "abc.jsonl").write_text("{}\n")
    rec.observe(status_doc(1.0, None, rows_in=5))
    run = {"id": "abc", "state": "running", "started_at": 1.5, "params": {"rate": 100}}
    for i in range(25):
        rec.observe(status_doc(2.0 + i, run, sent=i, batch=i, rows_in=5 + i))
    series = read_series(series_path(tmp_path / "gateway" / "series", "abc"))
    assert series is not None and series.header is not None
    assert series.header.run_id == "abc" and series.header.params == RunParams(rate=100)
    base = series.baseline()
    assert base is not None and base.spark_input_rows_total == 5
    during = series.during_run()
    assert len(series.samples) <= 11, "thinned past series_max_points"
    assert during[0].t == 2.0 and during[-1].t == 26.0, "the first and the last are kept"


def test_recorder_stops_after_the_tail_and_prunes_with_the_ledger(tmp_path: Path) -> None:
    rec = recorder(tmp_path, series_tail_s=5)
    runs = tmp_path / "generator" / "runs"
    runs.mkdir(parents=True)
    (runs / "aaa.jsonl").write_text("{}\n")
    ended = {**RUN, "id": "aaa", "state": "completed", "started_at": 0.0, "ended_at": 10.0}
    rec.observe(status_doc(12.0, ended))
    rec.observe(status_doc(18.0, ended))  # past the tail, not drained yet: recorded
    rec.observe(status_doc(20.0, ended, drained=True))  # the first drained one: recorded, the last
    rec.observe(status_doc(21.0, ended, drained=True))
    path = series_path(tmp_path / "gateway" / "series", "aaa")
    assert [s.t for s in read_series(path).samples] == [12.0, 18.0, 20.0]
    (runs / "aaa.jsonl").unlink()
    (runs / "bbb.jsonl").write_text("{}\n")
    rec.observe(status_doc(30.0, {**RUN, "id": "bbb", "started_at": 29.0}))
    assert not path.exists(), "a series goes with its run's ledger"


def test_a_torn_line_is_skipped() -> None:
    good = SeriesSample(t=1.0, sent=3).model_dump_json().encode()
    series = parse_series(good + b"\n" + b'{"type": "sample", "t": 2.0, "se')
    assert [s.t for s in series.samples] == [1.0]


def test_thin_keeps_baseline_first_last() -> None:
    samples = [SeriesSample(t=0, before_run=True)] + [SeriesSample(t=i) for i in range(1, 12)]
    kept = thin(samples)
    assert kept[0].before_run and kept[-1].t == 11 and len(kept) < len(samples)


def ledger() -> Ledger:
    run = LedgerRun(
        run_id="abc",
        topic="t",
        started_at=100.0,
        seed=7,
        params={
            "rate": 1.0,
            "count": 50,
            "profile": {"kind": "ramp", "from_rate": 10, "to_rate": 90, "over_s": 5},
            "fleet": {"customers": 3},
            "faults": {"invalid_ratio": 0.1},
        },
    )
    faults = [
        LedgerFault(kind="invalid", partition=0, offset=4, index=4, expected_reason="not_json"),
        LedgerFault(kind="late", partition=1, offset=2, index=2, event_offset=10_002, readings=1),
    ]
    return Ledger(
        run=run, faults=faults, end=LedgerEnd(state="completed", records=50, faults={"invalid": 1, "late": 1})
    )


def test_asked_outcome_devices_reasons() -> None:
    led = ledger()
    asked = asked_of(led)
    assert asked["rate"].startswith("ramp profile (from_rate=10") and asked["seed"] == "7"
    assert asked["fleet"] == "customers=3" and asked["faults"] == "invalid_ratio=0.1"
    rows = pl.DataFrame(
        {
            "eventOffset": [1, 1, 2],
            "deviceId": ["D1", "D2", "D1"],
            "temperature": [10, 20, 30],
            "status": ["ERROR", "SUCCESS", "SUCCESS"],
            "eventTime": ["a", "b", "c"],
        }
    )
    devs = device_table(rows)
    assert [d["deviceId"] for d in devs] == ["D1", "D2"]
    assert devs[0]["rows"] == 2 and devs[0]["temperature_mean"] == 20 and devs[0]["error_share"] == 0.5
    rejects = pl.DataFrame({"partition": [0, 0], "offset": [4, 5], "reason": ["not_json", "empty"]})
    reasons = reject_reasons(rejects, led)
    assert reasons == {"not_json": 1}, "only the run's malformed records"
    series = RunSeries(
        header=None,
        samples=[
            SeriesSample(t=0, before_run=True, spark_input_rows_total=100),
            SeriesSample(t=1, sent=50, acknowledged=50, spark_input_rows_total=150),
        ],
    )
    o = outcome(series, rows, reasons)
    assert (o.produced, o.spark_read, o.merged_rows, o.merged_events, o.rejected) == (50, 50, 3, 2, 1)
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0 and quantile([], 0.5) is None


def test_page_has_every_section_and_chart() -> None:
    led = ledger()
    samples = [
        SeriesSample(
            t=100.0 + i,
            rate_requested=10.0 + i,
            rate_achieved=9.0 + i,
            spark_batch_id=i,
            spark_batch_duration_ms=100 + i,
            lag_offsets=i,
            freshness_last_s=0.3 + i / 10,
            freshness_p50_s=0.5,
            freshness_p99_s=0.9,
        )
        for i in range(8)
    ]
    figures = ReportFigures(
        run_id="abc",
        ledger=led,
        series=RunSeries(header=None, samples=samples),
        outcome=Outcome(produced=50, merged_rows=3, reject_reasons={"not_json": 1}, rejected=1),
        verdict=RunReport(run_id="abc", faults={"invalid": 1, "late": 1, "skewed": 0, "resend": 0}),
        devices=[
            {
                "deviceId": "D1",
                "rows": 2,
                "temperature_min": 10,
                "temperature_mean": 20.0,
                "temperature_max": 30,
                "error_share": 0.5,
                "last_seen": "c",
            }
        ],
        architecture={"kafka": {"version": "4.1.1"}},
        asked=asked_of(led),
    )
    page = render_page(figures)
    for section in (
        'id="architecture"',
        'id="asked"',
        'id="outcome"',
        'id="verdict"',
        'id="freshness"',
        'id="rate"',
        'id="batches"',
        'id="lag"',
        'id="devices"',
    ):
        assert section in page, section
    for chart in ("architecture", "rate", "batches", "lag", "freshness", "devices"):
        assert f'data-chart="{chart}" data-points="0"' not in page and f'data-chart="{chart}"' in page
    for fetch in ("<script", "<link", 'src="http', "url(http", "<img"):
        assert fetch not in page, f"nothing to fetch: {fetch}"
    assert "verify --run: OK" in page and "not_json" in page
