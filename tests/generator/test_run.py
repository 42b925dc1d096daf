"""The run record: its one state transition method, its one rate, what the API shows of it."""

from __future__ import annotations

import time

from contract.api import RunParams
from contract.generator_options import RampProfile
from services.generator.profiles import Constant, Ramp
from services.generator.run import LiveRun


def test_rate_over_windows() -> None:
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    run.samples.clear()
    for t in range(0, 21):
        run.samples.append((float(t), t * 100))
    run.acknowledged = 2000
    assert run.rate_over(1.0, 20.0) == 100.0
    assert run.rate_over(10.0, 20.0) == 100.0


def test_state_moves_between_running_and_degraded_then_ends_once() -> None:
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    assert run.state == "running" and run.active and run.ended_at is None
    assert not run.change_state("running")
    assert run.change_state("degraded") and run.active
    assert run.change_state("running")
    assert run.change_state("stopped")
    assert not run.active and run.ended_at is not None and run.ended_clock is not None
    ended_at = run.ended_at
    for later in ("running", "degraded", "completed", "failed"):
        assert not run.change_state(later)  # type: ignore[arg-type]
    assert (run.state, run.ended_at) == ("stopped", ended_at)


def test_the_rate_lives_in_the_controller() -> None:
    run = LiveRun.begin(RunParams(rate=250), max_lag_s=1.0)
    now = time.monotonic()
    assert run.requested_rate(now) == 250 and run.document().params.rate == 250
    run.controller.set_rate(400, now)
    assert run.requested_rate(now + 1) == 400 and run.document().params.rate == 400
    assert run.params.rate == 250  # what the start asked for stays as it was


def test_a_profile_run_asks_for_the_curve_and_keeps_the_rate_it_ended_with() -> None:
    profile = RampProfile(kind="ramp", from_rate=100, to_rate=1100, over_s=10)
    run = LiveRun.begin(RunParams(rate=1100, profile=profile), max_lag_s=1.0)
    assert isinstance(run.controller.curve, Ramp)
    t0 = time.monotonic()
    run.controller.set_curve(run.controller.curve, t0 - 5)  # five seconds into the ramp
    assert abs(run.requested_rate(t0) - 600) < 1e-6
    run.change_state("completed")
    at_end = run.requested_rate(time.monotonic())
    assert 600 <= at_end < 1100 and run.requested_rate(time.monotonic() + 4) == at_end


def test_public_document() -> None:
    run = LiveRun.begin(RunParams(rate=5, count=100, seed=7, invalid_ratio=0.1), max_lag_s=1.0)
    assert isinstance(run.controller.curve, Constant)
    doc = run.document().model_dump()
    assert set(doc) == {"id", "state", "params", "started_at", "ended_at"}
    assert doc["params"] == {
        "rate": 5,
        "count": 100,
        "duration_s": None,
        "seed": 7,
        "invalid_ratio": 0.1,
        "profile": None,
        "fleet": None,
        "faults": None,
        "first_index": 0,
    }
