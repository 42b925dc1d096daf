"""Rate profiles against a simulated clock: each curve's schedule, per 1 s window, is the curve's
integral over that window (within 2%, or one event at low rates), and the request models refuse
impossible profiles naming the field."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from contract.generator_options import Profile, peak_rate
from services.generator.profiles import Burst, Constant, Curve, ProfileController, Ramp, Sine, Steps, curve_of
from services.generator.rate import RateController
from tests.generator.test_rate import count_between, simulate

EDGE_S = 0.003  # the simulated tick (2 ms) plus its jitter (up to 1 ms)
CURVES: dict[str, Curve] = {
    "constant": Constant(20_000),
    "ramp": Ramp(1_000, 20_000, 10),
    "steps": Steps((2_000, 20_000, 500), (4, 4, 4)),
    "burst": Burst(1_000, 20_000, 1, 3),
    "sine": Sine(10_000, 9_000, 8),
}


@pytest.mark.parametrize("name", CURVES)
def test_each_1s_window_follows_the_curve(name: str) -> None:
    curve = CURVES[name]
    ctl = ProfileController(curve, 0.0)
    times, cum = simulate(ctl, 0.0, 14.0, seed=7)
    # windows aligned with the curve's breakpoints (steps, bursts) and between them
    for k in range(0, 24):
        a = k * 0.5
        want = curve.integral(a + 1) - curve.integral(a)
        got = count_between(times, cum, a, a + 1)
        # events due within one tick before an edge are emitted at the first tick after it
        edge = EDGE_S * (curve.rate_at(a - EDGE_S) + curve.rate_at(a + 1 - EDGE_S))
        assert abs(got - want) <= max(0.02 * want, 2) + edge, (name, a, got, want)
    assert abs(cum[-1] - curve.integral(times[-1])) <= 2  # no drift


def test_integrals_match_the_rates() -> None:
    for curve in CURVES.values():
        for t in (0.3, 1.0, 2.5, 7.9, 13.0):
            h = 1e-4
            assert (curve.integral(t + h) - curve.integral(t)) / h == pytest.approx(curve.rate_at(t + h / 2), rel=1e-3)


def test_slow_ramp_from_zero_waits_for_the_first_scheduled_event() -> None:
    ctl = ProfileController(Ramp(0, 2, 10), 0.0)
    assert ctl.take(0.0) == 1  # event 0 at once, as with a constant rate
    w = ctl.wait_s(0.0)
    # event 1 is due when t^2/10 = 1: t = sqrt(10)
    assert w == pytest.approx(math.sqrt(10), abs=1e-3)
    assert ctl.take(math.sqrt(10) - 0.01) == 0
    assert ctl.take(math.sqrt(10) + 0.01) == 1


def test_zero_rate_idles_without_busy_looping() -> None:
    ctl = ProfileController(Constant(0), 0.0)
    assert ctl.take(0.0) == 1
    assert ctl.take(100.0) == 0
    assert ctl.wait_s(100.0) > 0.1


def test_set_rate_and_set_curve_rebase_at_now() -> None:
    ctl = ProfileController(Constant(1000), 0.0)
    times, _cum = simulate(ctl, 0.0, 5.0)
    ctl.set_curve(Ramp(1000, 3000, 2), times[-1])
    t1 = times[-1]
    times2, cum2 = simulate(ctl, t1, t1 + 4.0, seed=3)
    got = count_between(times2, cum2, t1 + 2, t1 + 3)
    assert abs(got - 3000) <= 60
    ctl.set_rate(500, times2[-1])
    assert ctl.rate_now(times2[-1] + 10) == 500


def test_falling_behind_does_not_burst() -> None:
    ctl = ProfileController(Ramp(1000, 1000, 1), 0.0)
    ctl.take(0.0)
    assert ctl.take(10.0) <= 1002
    assert ctl.skipped > 8000


ADAPTER = TypeAdapter(Profile)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "constant", "rate": -1}, ("constant", "rate")),
        ({"kind": "ramp", "from_rate": 1, "to_rate": 10, "over_s": 0}, ("ramp", "over_s")),
        ({"kind": "ramp", "from_rate": -5, "to_rate": 10, "over_s": 3}, ("ramp", "from_rate")),
        ({"kind": "steps", "steps": []}, ("steps", "steps")),
        ({"kind": "steps", "steps": [{"rate": 1, "duration_s": 0}]}, ("steps", "steps", 0, "duration_s")),
        ({"kind": "burst", "base_rate": 1, "burst_rate": 10, "burst_s": 5, "period_s": 5}, ("burst",)),
        ({"kind": "sine", "mean": 10, "amplitude": 11, "period_s": 5}, ("sine",)),
        ({"kind": "sine", "mean": 10, "amplitude": 1, "period_s": math.nan}, ("sine", "period_s")),
    ],
)
def test_impossible_profiles_name_the_field(body: dict, field: tuple) -> None:
    with pytest.raises(ValidationError) as e:
        ADAPTER.validate_python(body)
    assert e.value.errors()[0]["loc"] == field


def test_peak_rate_names_the_field() -> None:
    p = ADAPTER.validate_python(
        {"kind": "steps", "steps": [{"rate": 1, "duration_s": 1}, {"rate": 9, "duration_s": 1}]}
    )
    assert peak_rate(p) == ("steps.1.rate", 9)
    s = ADAPTER.validate_python({"kind": "sine", "mean": 10, "amplitude": 4, "period_s": 5})
    assert peak_rate(s) == ("amplitude", 14)
    assert curve_of(s).rate_at(1.25) == pytest.approx(14)


@pytest.mark.parametrize("rate", [0.2, 100, 20_000])
def test_a_constant_profile_paces_exactly_like_the_rate_controller(rate: float) -> None:
    a, b = RateController(rate, 5.0), ProfileController(Constant(rate), 5.0)
    ta, ca = simulate(a, 5.0, 25.0, seed=1)
    tb, cb = simulate(b, 5.0, 25.0, seed=1)
    assert ta == pytest.approx(tb) and ca == cb
