"""What the end-to-end stage says about a run besides freshness: each component's CPU (and the
bench's own), and `devicestream verify` over everything the stage sent."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import psutil
from pydantic import ValidationError

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
