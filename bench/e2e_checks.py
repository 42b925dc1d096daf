"""What the end-to-end stage says about a run besides freshness: each component's CPU (and the
bench's own), Spark's and the merger's peak memory at the sustained rate, and `devicestream verify`
over everything the stage sent."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import psutil
from pydantic import ValidationError

from bench.common import Figure, Spread, Target
from bench.stack import Stack
from contract.verify_report import VerifyReport


def cpu_shares(probe: dict[str, Any]) -> str:
    """Each component's CPU during a run, in cores and as a share of the machine's."""
    cores = os.cpu_count() or 1
    used = dict(probe["cpu_cores"])
    bench = used.pop("bench", 0.0)
    total = sum(used.values())
    shown = ", ".join(f"{k} {v:.2f} ({v / cores:.0%})" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))
    held = "held" if probe["ok"] else "NOT held"
    return (
        f"CPU at {probe['rate']:,.0f} events/s ({probe['seconds']:.0f} s run, {held}), cores per component (share "
        f"of the {cores}): {shown}; the pipeline {total:.2f} ({total / cores:.0%}); the bench's own process (load "
        f"driver, merged.csv tail) {bench:.2f}"
    )


#: Issue #25's memory bounds at the sustained rate: (component, what it is called, MiB)
RSS_TARGETS_MB = (("spark", "Spark", 1536.0), ("merger", "merger", 300.0))


def rss_figures(
    held: dict[str, Any] | None, top: dict[str, Any] | None, fresh: dict[str, Any], stage_peak_mb: dict[str, float]
) -> list[Figure]:
    """Spark's and the merger's peak RSS (process tree, sampled once a second over a run and its
    drain) at the sustained rate: the run that held it (`held`), else the highest run (`top`), said
    so. Baseline: the same component's peak during the 1,000 events/s freshness run (`fresh`)."""
    run = held or top
    if run is None or "peak_rss_mb" not in run:
        return []
    which = (
        f"the {run['seconds']:.0f} s run at {run['rate']:,.0f} events/s that held (the sustained rate) and its drain"
        if held
        else f"NO rate held: the {run['seconds']:.0f} s run at {run['rate']:,.0f} events/s and its drain"
    )
    whole = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(stage_peak_mb.items()))
    at_rate = ", ".join(f"{k} {v:,.0f}" for k, v in run["peak_rss_mb"].items())
    out = []
    for comp, label, limit in RSS_TARGETS_MB:
        value = run["peak_rss_mb"].get(comp)
        base = fresh.get("peak_rss_mb", {}).get(comp)
        if value is None:
            continue
        out.append(
            Figure(
                stage="e2e",
                name=f"{label} peak RSS at the sustained rate",
                unit="MB",
                value=Spread.of([value]),
                baseline_name=f"{label} peak RSS at 1,000 events/s (the freshness run)",
                baseline=Spread.of([base]) if base else None,
                target=Target("value", "<=", limit, f"<= {limit:,.0f} MB (process tree)"),
                sizes={"rate": run["rate"], "seconds": run["seconds"]},
                notes=[
                    f"measured over {which}; RSS of the component's process tree (psutil), sampled once a second",
                    f"every component over that run (MB): {at_rate}",
                    f"peak over the whole stage, overloaded probes included (MB): {whole}",
                ],
            )
        )
    return out


def stack_cpu(st: Stack) -> dict[str, float]:
    """CPU seconds so far per component, and the bench's own process."""
    return {**st.cpu_seconds(), "bench": sum(psutil.Process().cpu_times()[:2])}


def verify_text(st: Stack, timeout_s: float) -> str:
    """`devicestream verify` against the running stack: its verdict, or why there is none."""
    t0 = time.monotonic()
    try:
        done = st.verify(120, timeout_s)
    except subprocess.TimeoutExpired:
        return f"NOT RUN to the end: over {timeout_s:.0f} s"
    took = time.monotonic() - t0
    try:
        report = VerifyReport.model_validate_json(done.stdout)
    except ValidationError:
        return f"exit {done.returncode} in {took:.0f} s, no report: {(done.stdout + done.stderr)[-300:]}"
    counts = {k: getattr(report, k) for k in ("records", "rows_in_merged", *VerifyReport.PROBLEMS)}
    return f"exit {done.returncode} ({'clean' if done.returncode == 0 else 'NOT clean'}) in {took:.0f} s: {counts}"
