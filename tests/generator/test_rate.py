"""The rate controller against a simulated clock: no drift, +-1% over every 10 s window."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from services.generator.rate import RateController

TICK = 0.002  # the run loop never wakes more often than this


def simulate(
    ctl: RateController,
    start: float,
    end: float,
    *,
    jitter: float = 0.001,
    seed: int = 0,
    changes: dict[float, float] | None = None,
) -> tuple[list[float], list[int]]:
    """Run the controller like the run loop does, with random oversleep; returns (tick times,
    cumulative events emitted at each tick)."""
    rnd = random.Random(seed)
    changes = dict(changes or {})
    now = start
    times, cum = [], []
    total = 0
    while now < end:
        for at in [t for t in changes if t <= now]:
            ctl.set_rate(changes.pop(at), now)
        total += ctl.take(now)
        times.append(now)
        cum.append(total)
        wait = max(ctl.wait_s(now), TICK)
        now += wait + rnd.random() * jitter
    return times, cum


def count_between(times: list[float], cum: list[int], a: float, b: float) -> int:
    """Events emitted at ticks in [a, b)."""
    i = bisect.bisect_left(times, a)
    j = bisect.bisect_left(times, b)
    before = cum[i - 1] if i > 0 else 0
    upto = cum[j - 1] if j > 0 else 0
    return upto - before


@pytest.mark.parametrize("rate", [1, 3.7, 100, 2000, 50_000])
def test_every_10s_window_within_1_percent(rate: float) -> None:
    ctl = RateController(rate, 0.0)
    times, cum = simulate(ctl, 0.0, 40.0, seed=int(rate))
    step = 0.5
    for k in range(int(30 / step) + 1):
        a = k * step
        n = count_between(times, cum, a, a + 10)
        assert abs(n - rate * 10) <= max(0.01 * rate * 10, 0), (a, n)
    # no drift: the total is the schedule's
    assert abs(cum[-1] - rate * times[-1]) <= rate * 0.01 + 1


def test_slow_rate_one_event_every_5s() -> None:
    ctl = RateController(0.2, 100.0)
    assert ctl.take(100.0) == 1  # the first event goes at once
    assert ctl.take(104.9) == 0
    assert ctl.wait_s(104.9) == pytest.approx(0.1)
    assert ctl.take(105.0) == 1
    _times, cum = simulate(ctl, 105.0, 160.0)
    assert cum[-1] == 10  # 110, 115, ..., 155


def test_rate_change_mid_run() -> None:
    ctl = RateController(1000, 0.0)
    times, cum = simulate(ctl, 0.0, 40.0, changes={20.0: 5000})
    for a in (0.0, 5.0, 10.0):
        assert abs(count_between(times, cum, a, a + 10) - 10_000) <= 100
    for a in (20.01, 25.0, 30.0):
        assert abs(count_between(times, cum, a, a + 10) - 50_000) <= 500
    assert ctl.rate == 5000


def test_falling_behind_does_not_burst() -> None:
    ctl = RateController(1000, 0.0, max_lag_s=1.0)
    assert ctl.take(0.0) == 1
    # the caller was blocked for 10 s: only up to max_lag worth of events is made at once
    n = ctl.take(10.0)
    assert n <= 1000 + 2
    assert ctl.skipped > 8000
    # then the schedule continues from there without drift
    assert ctl.take(11.0) == pytest.approx(1000, abs=2)


def test_limit_is_respected_and_rest_stays_due() -> None:
    ctl = RateController(100, 0.0)
    assert ctl.take(0.5, limit=10) == 10
    assert ctl.due(0.5) == 41
    assert ctl.take(0.5) == 41
    assert ctl.wait_s(0.5) == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_bad_rates_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        RateController(bad, 0.0)
    ctl = RateController(1, 0.0)
    with pytest.raises(ValueError):
        ctl.set_rate(bad, 1.0)
