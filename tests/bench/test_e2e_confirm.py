"""The end-to-end stage's choice of long confirmation runs (bench/e2e_confirm.py): pure logic, the
runs' results made up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.e2e_confirm import MAX_CONFIRMS, confirms_text, next_confirm_rate, profile_rate, sustained

LADDER = (10_000.0, 40_000.0, 60_000.0, 80_000.0, 100_000.0)


def _walk(passing: tuple[float, ...], holds: Callable[[float], bool], max_runs: int = MAX_CONFIRMS) -> list[tuple]:
    """The long runs the stage makes when a run at `rate` holds iff `holds(rate)`."""
    runs: list[tuple[float, bool]] = []
    while (rate := next_confirm_rate(passing, runs, max_runs)) is not None:
        runs.append((rate, holds(rate)))
    return runs


def _run(rate: float, ok: bool) -> dict[str, Any]:
    return {"rate": rate, "ok": ok, "achieved": rate * (1 if ok else 0.9), "drain_s": 2.0 if ok else float("inf")}


def test_the_best_rate_that_holds_is_the_only_run() -> None:
    assert _walk(LADDER, lambda r: True) == [(100_000, True)]


def test_a_step_down_when_the_best_does_not_hold() -> None:
    assert _walk(LADDER, lambda r: r <= 80_000) == [(100_000, False), (80_000, True)]


def test_the_last_run_goes_halfway_down_what_is_left() -> None:
    # the last full-size run: 100k and 80k failed their 5 minutes; 60k, 40k, 10k are left -> 40k
    assert _walk(LADDER, lambda r: r <= 60_000) == [(100_000, False), (80_000, False), (40_000, True)]


def test_at_most_max_confirms_runs_and_none_may_hold() -> None:
    runs = _walk(LADDER, lambda r: False)
    assert runs == [(100_000, False), (80_000, False), (40_000, False)]
    assert len(_walk(LADDER, lambda r: False, max_runs=5)) == 5
    assert _walk(LADDER, lambda r: False, max_runs=0) == []


def test_only_rates_below_the_lowest_failure_that_passed_their_probe() -> None:
    # the ladder stopped at 60k: only 10k and 40k passed
    assert _walk((10_000, 40_000), lambda r: False) == [(40_000, False), (10_000, False)]
    assert _walk((), lambda r: True) == []
    # an upper middle with an even number left: 100k failed, then 80k; 60k, 40k, 20k, 10k left -> 40k
    assert next_confirm_rate(
        (10_000, 20_000, 40_000, 60_000, 80_000, 100_000), [(100_000, False), (80_000, False)]
    ) == (40_000)
    # unsorted and repeated rates
    assert next_confirm_rate((40_000, 10_000, 40_000), []) == 40_000


@pytest.mark.parametrize(
    ("best", "runs", "expected"),
    [
        (60_000, [], 60_000),  # quick: no long run, the best probe
        (100_000, [(100_000, False), (80_000, False), (40_000, True)], 40_000),
        (100_000, [(100_000, False), (80_000, False), (40_000, False)], 0.0),
        (100_000, [(100_000, True)], 100_000),
    ],
)
def test_sustained(best: float, runs: list[tuple[float, bool]], expected: float) -> None:
    assert sustained(best, [_run(r, ok) for r, ok in runs]) == expected


def test_confirms_text_says_what_was_tried_and_what_held() -> None:
    text = confirms_text([_run(100_000, False), _run(80_000, False), _run(40_000, True)], 300)
    assert "100,000/s FAILED" in text and "80,000/s FAILED" in text and "40,000/s held" in text
    assert text.endswith("; 40,000/s held") and "at most 3" in text
    assert confirms_text([_run(100_000, False)], 300).endswith("none held")
    assert "no 300 s run" in confirms_text([], 300)


def test_profile_rate_is_the_highest_rate_that_failed() -> None:
    ladder = [_run(r, True) for r in LADDER]
    # every probe passed, the long runs at 100k and 80k failed: profile 100k
    assert profile_rate([*ladder, _run(100_000, False), _run(80_000, False), _run(40_000, True)], 100_000) == 100_000
    # the ladder stopped at a failing 80k probe, then the long run at 60k failed too: profile 80k
    probes = [_run(10_000, True), _run(40_000, True), _run(60_000, True), _run(80_000, False)]
    assert profile_rate([*probes, _run(60_000, False)], 100_000) == 80_000
    # nothing failed (quick, no long run): the top of the ladder
    assert profile_rate([_run(10_000, True), _run(60_000, True)], 60_000) == 60_000
