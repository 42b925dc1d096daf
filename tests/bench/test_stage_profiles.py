"""The profiles stage's windowing, on synthetic CreateTimes: a perfect run stamped some start-up
latency after its schedule is counted on the curve's own time."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from bench.stage_profiles import PROFILES, window_ratios
from contract.generator_options import Profile
from services.generator.profiles import curve_of


@pytest.mark.parametrize("name", list(PROFILES))
def test_a_perfect_run_meets_the_curve_in_every_window(name: str) -> None:
    curve = curve_of(TypeAdapter(Profile).validate_python(PROFILES[name]))
    start_ms, latency_ms = 1_800_000_000_000, 37
    ts: list[int] = []
    for ms in range(8000):  # event k stamped in the millisecond where the curve's integral passes k
        due = int(curve.integral((ms + 1) / 1000)) - (int(curve.integral(ms / 1000)) if ms else -1)
        ts += [start_ms + latency_ms + ms] * due
    windows, offset = window_ratios(ts, PROFILES[name], 8)
    assert offset == pytest.approx(0, abs=2)  # measured from the first record, which is event 0
    for _, got, want in windows:
        assert abs(got / want - 1) < 0.005, windows
