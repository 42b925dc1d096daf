"""The generator's errors carry their HTTP status and answer (mapped once, in app.py), and the
start/rate routes' own checks (GENERATOR_MAX_RATE, a profile that produces events) are pure."""

from __future__ import annotations

import math

import pytest

from contract.api import Run, RunConflict, RunParams
from contract.generator_options import ConstantProfile, RampProfile, Step, StepsProfile
from services.generator.errors import (
    GeneratorError,
    InvalidField,
    KafkaUnavailableError,
    NoActiveRunError,
    OffsetStateError,
    RunActiveError,
)
from services.generator.routes.runs import checked_rate, profile_peak


def test_each_error_says_its_status_and_body() -> None:
    run = Run(id="r1", state="running", params=RunParams(rate=5), started_at=1.0)
    active = RunActiveError(run)
    assert active.status_code == 409
    assert RunConflict.model_validate(active.body()).run == run
    assert NoActiveRunError().status_code == 409 and "no active run" in NoActiveRunError().body()["detail"]
    assert KafkaUnavailableError("x").status_code == OffsetStateError("y").status_code == 503
    assert GeneratorError("refused").status_code == 400 and GeneratorError("refused").body() == {"detail": "refused"}


def test_rates_within_the_maximum() -> None:
    assert checked_rate(100.0, 100.0) == 100.0
    for bad in (100.5, math.inf):
        with pytest.raises(InvalidField) as e:
            checked_rate(bad, 100.0)
        (detail,) = e.value.body()["detail"]
        assert e.value.status_code == 422 and detail["loc"] == ["body", "rate"]
        assert "GENERATOR_MAX_RATE" in detail["msg"]
    assert InvalidField(["rate"], "m", math.inf).body()["detail"][0]["input"] == "inf"  # JSON has no infinity


def test_a_profile_is_checked_at_its_highest_rate_naming_that_field() -> None:
    assert profile_peak(RampProfile(from_rate=1, to_rate=50, over_s=3), 100.0) == 50
    steps = StepsProfile(steps=[Step(rate=1, duration_s=1), Step(rate=500, duration_s=1)])
    with pytest.raises(InvalidField) as e:
        profile_peak(steps, 100.0)
    assert e.value.body()["detail"][0]["loc"] == ["body", "profile", "steps", "steps", "1", "rate"]
    with pytest.raises(InvalidField) as e:
        profile_peak(ConstantProfile(rate=0), 100.0)
    assert "never produces an event" in str(e.value)
