"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no link to
anything (it opens without a network and prints to PDF as it shows). `render_page` is pure: the
figures in, the page out."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from devicestream.report import charts
from devicestream.report.figures import ReportFigures, quantile

DASH = "\N{EN DASH}"

#: the verify --run problem counts that judge each fault kind
KIND_PROBLEMS: dict[str, tuple[str, ...]] = {
    "invalid": ("invalid_not_rejected", "invalid_wrong_reason"),
    "late": ("timed_not_merged", "timed_wrong_event_time"),
    "skewed": ("timed_not_merged", "timed_wrong_event_time"),
    "resend": ("resent_wrong_count",),
}

CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d2433;
       margin: 0 auto; max-width: 820px; padding: 18px; }
h1 { font-size: 20pt; margin: 0 0 2px; } h2 { font-size: 13.5pt; margin: 22px 0 8px; border-bottom: 2px solid #2f6fdf;
     padding-bottom: 3px; } h3 { font-size: 11pt; margin: 14px 0 4px; }
.sub { color: #667085; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 9.5pt; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e4e7ec; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 3px 12px; border-radius: 12px; font-weight: 700; color: white; }
.ok { background: #2a9d5b; } .bad { background: #d64545; }
figure { margin: 6px 0 12px; page-break-inside: avoid; } figure svg { width: 100%; height: auto; }
figcaption { font-size: 8.5pt; color: #667085; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; margin: 8px 0; }
.kpi { border: 1px solid #e4e7ec; border-radius: 8px; padding: 6px 10px; }
.kpi b { display: block; font-size: 14pt; } .kpi span { font-size: 8.5pt; color: #667085; }
section { page-break-inside: auto; } .break { page-break-before: always; }
.keep { break-inside: avoid; page-break-inside: avoid; }
"""


def _e(v: object) -> str:
    return html.escape(DASH if v is None else str(v))


def _n(v: float | None, digits: int = 0) -> str:
    if v is None:
        return DASH
    return f"{v:,.{digits}f}" if digits else f"{round(v):,}"


def _table(head: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{_e(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart: charts.Chart, caption: str) -> str:
    return (
        f'<figure class="chart" data-chart="{chart.name}" data-points="{chart.points}">{chart.svg}'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _when(ts: float | None) -> str:
    return DASH if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_page(f: ReportFigures) -> str:
    run = f.series.during_run()
    t0 = f.ledger.run.started_at
    t = [s.t - t0 for s in run]
    fresh = [s.freshness_last_s for s in run if s.freshness_last_s is not None]
    last_fresh = next((s for s in reversed(run) if s.freshness_p50_s is not None), None)
    p50 = last_fresh.freshness_p50_s if last_fresh else quantile(fresh, 0.5)
    p99 = last_fresh.freshness_p99_s if last_fresh else quantile(fresh, 0.99)
    batches: dict[int, int] = {}
    for s in run:
        if s.spark_batch_id is not None and s.spark_batch_duration_ms is not None:
            batches[s.spark_batch_id] = s.spark_batch_duration_ms
    devs = f.devices
    figs = {
        "architecture": charts.architecture_chart(f.architecture),
        "rate": charts.rate_chart(t, [s.rate_requested for s in run], [s.rate_achieved for s in run]),
        "batches": charts.batch_chart(list(batches), list(batches.values())),
        "lag": charts.lag_chart(t, [s.lag_offsets for s in run]),
        "freshness": charts.freshness_chart(fresh, p50, p99),
        "devices": charts.device_chart(
            [d["deviceId"] for d in devs], [d["rows"] for d in devs], [d["error_share"] or 0.0 for d in devs]
        ),
    }
    o, v = f.outcome, f.verdict
    end = f.ledger.end
    verdict = (
        f'<span class="verdict {"ok" if v.ok else "bad"}">verify --run: {"OK" if v.ok else "PROBLEMS FOUND"}</span>'
    )
    kinds = [
        [
            k,
            v.faults.get(k, 0),
            sum(v.problems.get(p, 0) for p in KIND_PROBLEMS[k]),
            _kind_result(v.faults, v.problems, k),
        ]
        for k in KIND_PROBLEMS
    ]
    accounting = [
        ["produced (sent by the generator)", _n(o.produced)],
        ["acknowledged by Kafka", _n(o.acknowledged)],
        ["read by Spark (input rows during the run)", _n(o.spark_read)],
        ["rows written by Spark", _n(o.spark_rows_out)],
        ["rejected by Spark (during the run)", _n(o.spark_rejects)],
        ["merged rows (the run's eventOffsets in merged.csv)", _n(o.merged_rows)],
        ["merged events", _n(o.merged_events)],
        ["the run's malformed records found in the rejects", _n(o.rejected)],
    ]
    reasons = [[r, c] for r, c in o.reject_reasons.items()] or [["(none)", 0]]
    arch_rows = [[c, k, val] for c, facts in f.architecture.items() for k, val in facts.items()]
    dev_rows = [
        [
            d["deviceId"],
            d["rows"],
            d["temperature_min"],
            d["temperature_mean"],
            d["temperature_max"],
            f"{(d['error_share'] or 0) * 100:.1f}%",
            (d["last_seen"] or "")[11:23],
        ]
        for d in devs
    ]
    kpis = [
        ("events produced", _n(o.produced)),
        ("rows merged", _n(o.merged_rows)),
        ("freshness p50 / p99", f"{_n(p50, 2)} / {_n(p99, 2)} s"),
        ("faults injected", _n(sum(v.faults.values()))),
    ]
    ended = f"sampled until {_when(run[-1].t)}" if run else "no samples"
    state = end.state if end else run[-1].run_state if run else None
    records = end.records if end else None
    captions = {
        "architecture": "Generator → Kafka → Spark → merger; the gateway is the one HTTP door and sampled this run.",
        "freshness": "The merger's last freshness, sampled every second of the run (it changes once a merge); "
        "lines: its window p50 and p99.",
        "rate": "The profile's rate now (rate_requested) against what the generator achieved (rate_1s).",
        "batches": "Duration of each Spark micro-batch seen in progress.json by the once-a-second sampler.",
        "lag": "Records in Kafka that Spark had not read yet (Kafka's end offsets minus Spark's), each second.",
        "devices": "Rows per device of this run (bars) and its error share (dots).",
    }
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devicestream run {_e(f.run_id)}</title>
<style>{CSS}</style></head>
<body data-run="{_e(f.run_id)}" data-ok="{str(v.ok).lower()}">
<h1>devicestream run {_e(f.run_id)}</h1>
<p class="sub">started {_when(t0)} · {_e(ended)} · state {_e(state)} · {_e(records)} records · {verdict}</p>
<div class="kpis">{"".join(f'<div class="kpi"><b>{_e(b)}</b><span>{_e(a)}</span></div>' for a, b in kpis)}</div>

<section id="architecture"><h2>The architecture</h2>
{_figure(figs["architecture"], captions["architecture"])}
{_table(["component", "setting", "as it ran"], arch_rows, numeric_from=9)}</section>

<section id="asked"><h2>What was asked</h2>
{_table(["", "value"], [[k, val] for k, val in f.asked.items()], numeric_from=9)}</section>

<section id="outcome" class="break"><h2>What came out</h2>
<h3>Through each stage</h3>{_table(["stage", "count"], accounting)}
<h3>Rejected, with the reasons</h3>{_table(["reason", "records"], reasons)}
<h3 id="verdict">The verdict: verify --run and the fault ledger</h3><p>{verdict}</p>
{_table(["fault kind", "injected", "problems", "result"], kinds)}
<div class="keep"><h3 id="freshness">Freshness: p50 {_n(p50, 2)} s, p99 {_n(p99, 2)} s</h3>
{_figure(figs["freshness"], captions["freshness"])}</div>
<div class="keep"><h3 id="rate">Requested against achieved rate</h3>
{_figure(figs["rate"], captions["rate"])}</div>
<div class="keep"><h3 id="batches">Spark batch durations</h3>
{_figure(figs["batches"], captions["batches"])}</div>
<div class="keep"><h3 id="lag">Lag over time</h3>
{_figure(figs["lag"], captions["lag"])}</div>
<div class="keep"><h3 id="devices">Per-device figures</h3>
{_figure(figs["devices"], captions["devices"])}</div>
{_table(["device", "rows", "temp min", "temp mean", "temp max", "error share", "last eventTime (UTC)"], dev_rows)}
</section>
<p class="sub">Made by <code>devicestream report</code> from the run's ledger, its time series
(gateway/series/{_e(f.run_id)}.jsonl), merged.csv and the rejects.</p>
</body></html>
"""


def _kind_result(faults: dict[str, int], problems: dict[str, int], kind: str) -> str:
    if not faults.get(kind):
        return "none injected"
    bad = sum(problems.get(p, 0) for p in KIND_PROBLEMS[kind])
    return "ok" if bad == 0 else f"{bad} problem(s)"
