"""The end-to-end stage's long confirmation runs, as pure logic: which rate to run next from the
results so far, what the stage reports as sustained, which rate to profile.

A 30 s probe can pass a rate whose lag grows slowly, so the ladder's best rate is confirmed by a long
run (5 minutes at full size). Each long run costs its length plus the drain, so at most
`MAX_CONFIRMS` of them: the best rate, then one step down the ladder, then (the last run) halfway
down the passing rates that are left, which is more likely to hold than the next step and still
says more than the lowest rung."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_CONFIRMS = 3


def next_confirm_rate(
    passing: Sequence[float], runs: Sequence[tuple[float, bool]], max_runs: int = MAX_CONFIRMS
) -> float | None:
    """The rate of the next long run, or None when done. `passing`: the ladder rates whose probe
    held; `runs`: (rate, held) of the long runs so far, in order. Done when a run held, when
    `max_runs` ran, or when no passing rate is left below the lowest rate that failed."""
    if any(held for _, held in runs) or len(runs) >= max_runs:
        return None
    floor = min((rate for rate, _ in runs), default=float("inf"))
    left = sorted({rate for rate in passing if rate < floor}, reverse=True)
    if not left:
        return None
    if len(runs) < max_runs - 1:
        return left[0]  # the best, then one step down
    return left[(len(left) - 1) // 2]  # the last run: halfway down (the upper middle)


def sustained(best: float, confirms: Sequence[Mapping[str, Any]]) -> float:
    """The highest rate that held: the best probe when there is no long run, else the long run
    that held (0 when none did)."""
    if not confirms:
        return best
    return max((c["rate"] for c in confirms if c["ok"]), default=0.0)


def confirms_text(confirms: Sequence[Mapping[str, Any]], seconds: float, max_runs: int = MAX_CONFIRMS) -> str:
    """Which rates the long runs tried and which held, for the report."""
    if not confirms:
        return f"no {seconds:.0f} s run (no probe passed)"
    tried = ", ".join(
        f"{c['rate']:,.0f}/s {'held' if c['ok'] else 'FAILED'}"
        f" (achieved {c['achieved']:,.0f}/s, drain {c['drain_s']:.1f} s)"
        for c in confirms
    )
    held = sustained(0.0, confirms)
    verdict = f"{held:,.0f}/s held" if held else "none held"
    return (
        f"{seconds:.0f} s runs (best probe rate, a step down the ladder, then halfway down what is left; "
        f"at most {max_runs}): {tried}; {verdict}"
    )


def profile_rate(probes: Sequence[Mapping[str, Any]], fallback: float) -> float:
    """The rate to profile when the target is not met: the highest rate that failed, a probe's or a
    long run's (the top of the ladder when nothing failed)."""
    return max((p["rate"] for p in probes if not p["ok"]), default=fallback)
