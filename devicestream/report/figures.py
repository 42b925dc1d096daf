"""What a run's report shows, gathered from the data folder's files only (so a report can be made
after the run and after a restart, with the stack down): the run's ledger (what was asked, the
faults), its time series (contract/run_series.py, written by the gateway), merged.csv and the
rejects (what came out, per device, with reasons), `verify --run` (devicestream/run_check.py),
launcher.json (the stack as it ran) and the installed versions.

The pure parts (`rate_asked`, `outcome`, `device_table`, `reject_reasons`, `quantile`) take
documents and frames and are unit-tested; `collect` is the shell that reads the files."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from contract.api import RunParams
from contract.csv import ROW_COLUMNS
from contract.launcher import LauncherState
from contract.layout import DataLayout
from contract.ledger import FAULT_KINDS, Ledger, LedgerError, ledger_path, read_ledger
from contract.progress import read_progress_or_none
from contract.run_series import RunSeries, SeriesSample, read_series, series_path
from contract.verify_report import RunReport
from devicestream.merged_files import merged_files
from devicestream.run_check import verify_run
from devicestream.verify import _rejects, merged_rejects_of

PACKAGES = ("devicestream", "pyspark", "polars", "aiokafka", "fastapi", "matplotlib")


class ReportInputError(LookupError):
    """No such run (or no run at all): the message says which and where it looked."""


@dataclass
class Outcome:
    """What came out of the run, one figure per stage."""

    produced: int | None = None
    acknowledged: int | None = None
    spark_read: int | None = None
    spark_rows_out: int | None = None
    spark_rejects: int | None = None
    merged_rows: int = 0
    merged_events: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class ReportFigures:
    run_id: str
    ledger: Ledger
    series: RunSeries
    outcome: Outcome
    verdict: RunReport
    devices: list[dict[str, Any]]
    architecture: dict[str, dict[str, str]]
    asked: dict[str, str]


def last_run_id(runs_dir: Path) -> str:
    """The newest ledger's run id (by the time its header says the run started)."""
    best: tuple[float, str] | None = None
    for p in runs_dir.glob("*.jsonl"):
        with contextlib.suppress(LedgerError, OSError):
            started = read_ledger(p).run.started_at
            if best is None or started > best[0]:
                best = (started, p.stem)
    if best is None:
        raise ReportInputError(f"no generator run yet: no ledger in {runs_dir}")
    return best[1]


def rate_asked(params: RunParams | None) -> str:
    """Pure: the rate or profile of a run's parameters, in words."""
    if params is not None and params.profile is not None:
        rest = ", ".join(f"{k}={v}" for k, v in params.profile.model_dump(mode="json").items() if k != "kind")
        return f"{params.profile.kind} profile ({rest})"
    return f"constant {None if params is None else params.rate} events/s"


def asked_of(ledger: Ledger) -> dict[str, str]:
    """Pure: what was asked, as label -> text (the ledger header's parameters)."""
    p = ledger.run.params

    def opts(v: BaseModel | None) -> str:
        shown = {} if v is None else v.model_dump(mode="json", exclude_unset=True)  # (a ledger sets them all)
        return ", ".join(f"{k}={x}" for k, x in shown.items()) or "none"

    return {
        "rate": rate_asked(p),
        "count": str(p.count or "unbounded"),
        "duration": f"{p.duration_s} s" if p.duration_s else "unbounded",
        "seed": str(ledger.run.seed),
        "fleet": opts(p.fleet),
        "faults": opts(p.faults) + (f"; invalid_ratio={p.invalid_ratio}" if p.invalid_ratio else ""),
    }


def _delta(end: int | None, start: int | None) -> int | None:
    return None if end is None else end - (start or 0)


def outcome(series: RunSeries, merged: pl.LazyFrame | pl.DataFrame, reasons: dict[str, int]) -> Outcome:
    """Pure: the run's figures. Generator counts are its own (last sample); Spark's are its totals'
    growth since the sample before the run; merged rows and events are counted in merged.csv over
    the run's eventOffsets; rejects are the ledger's malformed records found in the rejects."""
    run = series.during_run()
    last = run[-1] if run else SeriesSample(t=0)
    base = series.baseline() or (run[0] if run else SeriesSample(t=0))
    rows, events = merged.lazy().select(pl.len(), pl.col("eventOffset").n_unique()).collect(engine="streaming").row(0)
    return Outcome(
        produced=last.sent,
        acknowledged=last.acknowledged,
        spark_read=_delta(last.spark_input_rows_total, base.spark_input_rows_total),
        spark_rows_out=_delta(last.spark_rows_out_total, base.spark_rows_out_total),
        spark_rejects=_delta(last.spark_rejects_total, base.spark_rejects_total),
        merged_rows=rows,
        merged_events=events,
        rejected=sum(reasons.values()),
        reject_reasons=reasons,
    )


def run_rows(merged_csv: Path, first: int | None, last: int | None) -> pl.LazyFrame:
    """merged.csv's rows whose eventOffset is in [first, last] (the run's), as a lazy scan: the
    figures are computed by polars' streaming engine, so memory does not grow with merged.csv."""
    schema = dict.fromkeys(ROW_COLUMNS, pl.String) | {"eventOffset": pl.Int64, "temperature": pl.Int64}
    files = merged_files(merged_csv)  # (merged.csv, or its retained segments)
    if first is None or last is None or not files.paths:
        return pl.LazyFrame(schema=schema)
    return (
        files.scan_text()
        .cast({c: t for c, t in schema.items() if t != pl.String})
        .filter(pl.col("eventOffset").is_between(first, last))
        .select("eventOffset", "deviceId", "temperature", "status", "eventTime")
    )


def device_table(rows: pl.LazyFrame | pl.DataFrame) -> list[dict[str, Any]]:
    """Pure: per device, rows, temperature min/mean/max, error share and last eventTime."""
    table = (
        rows.lazy()
        .filter(pl.col("deviceId").is_not_null())
        .group_by("deviceId")
        .agg(
            pl.len().alias("rows"),
            pl.col("temperature").min().alias("temperature_min"),
            pl.col("temperature").mean().round(2).alias("temperature_mean"),
            pl.col("temperature").max().alias("temperature_max"),
            (pl.col("status") == "ERROR").mean().round(4).alias("error_share"),
            pl.col("eventTime").max().alias("last_seen"),
        )
        .sort("deviceId")
    )
    return table.collect(engine="streaming").to_dicts()


def reject_reasons(rejects: pl.DataFrame, ledger: Ledger) -> dict[str, int]:
    """Pure: the reasons the run's malformed records (the ledger's) were rejected with."""
    wanted = {(f.partition, f.offset) for f in ledger.faults if f.kind == "invalid"}
    if not wanted or rejects.height == 0:
        return {}
    counts: dict[str, int] = {}
    for r in rejects.iter_rows(named=True):
        if (r["partition"], r["offset"]) in wanted:
            counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def quantile(values: list[float], q: float) -> float | None:
    """Pure: the q-quantile (nearest rank) of values; None for none."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def architecture(layout: DataLayout, series: RunSeries, project_root: Path) -> dict[str, dict[str, str]]:
    """Each component's version and settings as the run had them (the series header, launcher.json,
    progress.json, the installed packages)."""
    h = series.header
    versions = {}
    for pkg in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    kafka_jar = next(iter(sorted((project_root / ".jars" / "kafka").glob("kafka_2.*.jar"))), None)
    kafka_version = re.sub(r"^kafka_[\d.]+-|\.jar$", "", kafka_jar.name) if kafka_jar else "unknown"
    stack = LauncherState.read(layout.launcher_state)
    spark_cmd = (stack.components.get("spark") if stack else None) or None
    cmdline = spark_cmd.leader.cmdline if spark_cmd and spark_cmd.leader else []
    master = cmdline[cmdline.index("--master") + 1] if "--master" in cmdline[:-1] else os.environ.get("SPARK_MASTER")
    progress = read_progress_or_none(layout.spark_progress)
    security = (h.kafka_security_protocol if h else None) or "PLAINTEXT"
    return {
        "kafka": {
            "version": kafka_version,
            "bootstrap": (h.kafka_bootstrap if h else None) or "-",
            "brokers": str(h.kafka_brokers if h else "-"),
            "topic": f"{h.topic if h else '-'} ({h.kafka_partitions if h else '?'} partitions)",
            "security": "on (" + security + ")" if security != "PLAINTEXT" else "off (PLAINTEXT)",
        },
        "generator": {"version": versions.get("devicestream", "?"), "url": (h.generator_url if h else None) or "-"},
        "spark": {
            "version": versions.get("pyspark", "?"),
            "master": master or "local[2] (default)",
            "trigger": os.environ.get("SPARK_JOB_TRIGGER_INTERVAL", "the job's default"),
            "state": (progress.state or "-") if progress else "no progress.json",
        },
        "merger": {
            "version": f"devicestream {versions.get('devicestream', '?')}, polars {versions.get('polars', '?')}",
            "url": (h.merger_url if h else None) or "-",
        },
        "gateway": {
            "version": f"fastapi {versions.get('fastapi', '?')}",
            "sampled every": f"{h.sample_interval_s if h else 1} s",
        },
    }


def collect(layout: DataLayout, run_id: str | None, project_root: Path, *, wait_s: float = 0.0) -> ReportFigures:
    run_id = run_id or last_run_id(layout.generator_runs)
    try:
        path = ledger_path(layout.generator_runs, run_id)
        ledger = read_ledger(path)
    except LedgerError as e:
        raise ReportInputError(f"no run {run_id}: {e}") from None
    series = read_series(series_path(layout.run_series, run_id)) or RunSeries(header=None, samples=[])
    run = series.during_run()
    first = next((s.offset_first for s in run if s.offset_first is not None), None)
    last = next((s.offset_last for s in reversed(run) if s.offset_last is not None), None)
    rows = run_rows(layout.merged_csv, first, last)
    rejects = _rejects(layout.spark_rejects, merged_rejects_of(layout.merged_csv)).collect()
    verdict = verify_run(path, layout.merged_csv, layout.spark_rejects, wait_s=wait_s)
    return ReportFigures(
        run_id=run_id,
        ledger=ledger,
        series=series,
        outcome=outcome(series, rows, reject_reasons(rejects, ledger)),
        verdict=verdict,
        devices=device_table(rows),
        architecture=architecture(layout, series, project_root),
        asked=asked_of(ledger),
    )


__all__ = ["FAULT_KINDS", "ReportFigures", "ReportInputError", "collect"]
