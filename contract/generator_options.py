"""Request models for the generator as a test-data tool: a rate profile, a device fleet, faults.

They are nested, optional parts of the start request (`profile`, `fleet`, `faults`) and of the
rate request (`profile`). Nothing here imports the service: the module can move to contract/ as
it is. Every impossible value is a 422 naming its field (a negative rate, a ramp of zero length,
a probability outside [0, 1])."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Rate = Annotated[float, Field(ge=0, allow_inf_nan=False, description="Events per second (0 or more).")]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False, description="Seconds (more than 0).")]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description="A probability in [0, 1].")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ConstantProfile(_Model):
    """The same rate all along (what `rate` alone asks for)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "constant", "rate": 1000}]})
    kind: Literal["constant"] = "constant"
    rate: Rate


class RampProfile(_Model):
    """From `from_rate` to `to_rate` linearly over `over_s` seconds, then `to_rate` on."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "ramp", "from_rate": 100, "to_rate": 5000, "over_s": 60}]}
    )
    kind: Literal["ramp"] = "ramp"
    from_rate: Rate
    to_rate: Rate
    over_s: Seconds


class Step(_Model):
    rate: Rate
    duration_s: Seconds


class StepsProfile(_Model):
    """Each step's rate for its duration, one after the other; the last rate holds after the last step."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "steps",
                    "steps": [{"rate": 500, "duration_s": 10}, {"rate": 2000, "duration_s": 10}],
                }
            ]
        }
    )
    kind: Literal["steps"] = "steps"
    steps: list[Step] = Field(min_length=1, max_length=1000)


class BurstProfile(_Model):
    """`base_rate`, except `burst_rate` for the first `burst_s` seconds of every `period_s`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"kind": "burst", "base_rate": 200, "burst_rate": 5000, "burst_s": 2, "period_s": 10}]
        }
    )
    kind: Literal["burst"] = "burst"
    base_rate: Rate
    burst_rate: Rate
    burst_s: Seconds
    period_s: Seconds

    @model_validator(mode="after")
    def _burst_within_period(self) -> BurstProfile:
        if self.burst_s >= self.period_s:
            raise ValueError("burst_s must be shorter than period_s")
        return self


class SineProfile(_Model):
    """mean + amplitude * sin(2 pi t / period_s); the amplitude is at most the mean (no negative rate)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "sine", "mean": 2000, "amplitude": 1000, "period_s": 30}]}
    )
    kind: Literal["sine"] = "sine"
    mean: Rate
    amplitude: Rate
    period_s: Seconds

    @model_validator(mode="after")
    def _never_negative(self) -> SineProfile:
        if self.amplitude > self.mean:
            raise ValueError("amplitude must be at most mean (the rate would go negative)")
        return self


Profile = Annotated[
    ConstantProfile | RampProfile | StepsProfile | BurstProfile | SineProfile, Field(discriminator="kind")
]


def peak_rate(p: ConstantProfile | RampProfile | StepsProfile | BurstProfile | SineProfile) -> tuple[str, float]:
    """The profile's highest rate and the field that asks for it (for the maximum-rate check)."""
    if isinstance(p, ConstantProfile):
        return "rate", p.rate
    if isinstance(p, RampProfile):
        return ("from_rate", p.from_rate) if p.from_rate >= p.to_rate else ("to_rate", p.to_rate)
    if isinstance(p, StepsProfile):
        i = max(range(len(p.steps)), key=lambda k: p.steps[k].rate)
        return f"steps.{i}.rate", p.steps[i].rate
    if isinstance(p, BurstProfile):
        return ("burst_rate", p.burst_rate) if p.burst_rate >= p.base_rate else ("base_rate", p.base_rate)
    return "amplitude", p.mean + p.amplitude


class StatusMachine(_Model):
    """Per-reading probability of a device moving from one status to another (the rest: it stays)."""

    success_to_error: Probability = 0.02
    success_to_standby: Probability = 0.01
    error_to_success: Probability = 0.3
    error_to_standby: Probability = 0.05
    standby_to_success: Probability = 0.1
    standby_to_error: Probability = 0.0

    @model_validator(mode="after")
    def _rows_at_most_one(self) -> StatusMachine:
        for name, total in (
            ("success", self.success_to_error + self.success_to_standby),
            ("error", self.error_to_success + self.error_to_standby),
            ("standby", self.standby_to_success + self.standby_to_error),
        ):
            if total > 1:
                raise ValueError(f"the probabilities of leaving {name} add up to {total:g}, more than 1")
        return self


class FleetOptions(_Model):
    """A seeded fleet: each customer owns a stable set of devices; an event is one customer's report
    of some of its devices; temperature walks within bounds; status follows a state machine;
    devices go silent and come back."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customers": 10,
                    "devices_per_customer": 4,
                    "max_temperature_step": 2,
                    "silent_probability": 0.01,
                    "wake_probability": 0.2,
                }
            ]
        }
    )
    customers: int = Field(default=21, ge=1, le=21, description="How many of the 21 customers report.")
    devices_per_customer: int = Field(default=3, ge=1, le=50)
    max_temperature_step: int = Field(default=2, ge=0, le=30, description="Largest change between two readings.")
    silent_probability: Probability = Field(default=0.01, description="Per report: a device goes silent.")
    wake_probability: Probability = Field(default=0.2, description="Per report: a silent device comes back.")
    status: StatusMachine = Field(default_factory=StatusMachine)


class FaultOptions(_Model):
    """Faults with ground truth: each one is written to the run's ledger (partition, offset, kind,
    parameters) so `devicestream verify --run <id>` can check the pipeline against it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "invalid_ratio": 0.01,
                    "late_ratio": 0.02,
                    "max_lateness_s": 120,
                    "skewed_devices_ratio": 0.2,
                    "max_skew_s": 30,
                    "resend_ratio": 0.01,
                }
            ]
        }
    )
    invalid_ratio: Probability = Field(default=0.0, description="Fraction of malformed records.")
    late_ratio: Probability = Field(default=0.0, description="Fraction of events that arrive late (out of order).")
    max_lateness_s: float = Field(
        default=60.0, ge=0, allow_inf_nan=False, description="A late event's eventTime is up to this far in the past."
    )
    skewed_devices_ratio: Probability = Field(default=0.0, description="Fraction of devices whose clock is off.")
    max_skew_s: float = Field(
        default=30.0, ge=0, allow_inf_nan=False, description="A skewed clock is off by up to this, either way."
    )
    resend_ratio: Probability = Field(default=0.0, description="Fraction of events produced again as a new record.")
