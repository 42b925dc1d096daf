"""Request and response documents of the REST APIs: the generator's, shared by the generator (which
validates requests and writes the answers) and the gateway (which validates what it forwards and
what comes back). One model per route; the maximum rate is a generator setting
(GENERATOR_MAX_RATE), so only the generator checks it.

The generator builds its answers as these models and they forbid extra fields: a misspelt or
unknown field is an error where it is written (generator) or read (gateway: a 502), never passed
on silently. Both come from the same commit.

`rate` and `profile` exclude each other: the start and rate bodies are each a union of two
models, one with `rate` and one with `profile` (a oneOf in the OpenAPI, both closed), chosen by
which of the two keys the body has; their errors are at the body's own field paths."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contract.generator_options import FaultOptions, FleetOptions, Profile

GeneratorState = Literal["idle", "running", "completed", "stopped", "degraded", "failed"]


class RunOptions(BaseModel):
    """What a start may ask for besides its pace (`rate` or `profile`): the part the two start
    bodies share, and the part of `RunParams` the start sets as it was sent."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    count: int | None = Field(default=None, ge=1, description="End the run after this many events.")
    duration_s: float | None = Field(default=None, gt=0, description="End the run after this many seconds.")
    seed: int | None = Field(
        default=None, description="Makes the run's content (all but eventTime/eventOffset) reproducible."
    )
    invalid_ratio: float = Field(default=0.0, ge=0, le=1, description="Fraction of deliberately malformed records.")
    fleet: FleetOptions | None = Field(default=None, description="Readings from a seeded fleet of devices.")
    faults: FaultOptions | None = Field(default=None, description="Faults written to the run's ledger.")
    first_index: int = Field(
        default=0, ge=0, description="Start a seeded run's content at this record (continue it after a restart)."
    )


RATE_DESCRIPTION = (
    "Events per second (below 1 works: 0.2 = one every 5 s); at most the generator's GENERATOR_MAX_RATE "
    "(422 naming the field beyond it)."
)


class StartAtRate(RunOptions):
    """POST /generator/start at a constant `rate` (no `profile`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"rate": 1000, "count": 60000, "seed": 1},
                {
                    "rate": 500,
                    "count": 10000,
                    "seed": 7,
                    "fleet": {"customers": 5, "devices_per_customer": 4},
                    "faults": {"invalid_ratio": 0.01, "late_ratio": 0.02, "resend_ratio": 0.01},
                },
            ]
        }
    )

    rate: float = Field(gt=0, description=RATE_DESCRIPTION)


class StartWithProfile(RunOptions):
    """POST /generator/start following a rate `profile` (no `rate`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"profile": {"kind": "ramp", "from_rate": 100, "to_rate": 5000, "over_s": 60}, "duration_s": 120}
            ]
        }
    )

    profile: Profile = Field(description="A rate that changes over the run; its highest rate is checked as `rate` is.")


class SetRate(BaseModel):
    """PUT /generator/rate: a new constant `rate` for the active run."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    rate: float = Field(gt=0, description="New events per second of the active run (at most GENERATOR_MAX_RATE).")


class SetProfile(BaseModel):
    """PUT /generator/rate: a new rate profile for the active run, from now."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    profile: Profile = Field(description="A new rate profile, from now (instead of `rate`).")


def _pace_of(body: Any) -> str:
    """Which body a request is: `profile` when it gives a profile and no rate, else `rate` (so a
    body with neither is told `rate` is missing, and one with both that `profile` is one too many)."""
    if isinstance(body, dict):
        return "profile" if "profile" in body and "rate" not in body else "rate"
    return "profile" if isinstance(body, StartWithProfile | SetProfile) else "rate"


def _without_tag(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The errors of the body chosen, at the body's own field paths (the tag is no part of the
    document); `rate` and `profile` together are refused as such."""
    try:
        return handler(value)
    except ValidationError as e:
        errors: list[InitErrorDetails] = []
        for err in e.errors():
            loc = err["loc"][1:] if err["loc"] and err["loc"][0] in ("rate", "profile") else err["loc"]
            if err["type"] == "extra_forbidden" and loc == ("profile",):
                kind = PydanticCustomError("rate_or_profile", "Give `rate` or `profile`, not both")
                errors.append({"type": kind, "loc": loc, "input": err["input"]})
            else:
                errors.append({"type": err["type"], "loc": loc, "input": err["input"], "ctx": err.get("ctx", {})})
        raise ValidationError.from_exception_data(e.title, errors) from None


#: Body of POST /generator/start: `rate` or `profile` (exactly one: the schema is a oneOf), the rest optional.
StartRequest = Annotated[
    Annotated[StartAtRate, Tag("rate")] | Annotated[StartWithProfile, Tag("profile")],
    Discriminator(_pace_of),
    WrapValidator(_without_tag),
]

#: Body of PUT /generator/rate: `rate` or `profile` (exactly one).
RateRequest = Annotated[
    Annotated[SetRate, Tag("rate")] | Annotated[SetProfile, Tag("profile")],
    Discriminator(_pace_of),
    WrapValidator(_without_tag),
]


class RunParams(RunOptions):
    """What a run asks for, as the generator reports it: the start's options, the profile it
    follows (if any) and `rate`, what it asks for now (a profile's current rate, or the last
    PUT /generator/rate)."""

    rate: float = Field(ge=0, description="Events per second the run asks for now.")
    profile: Profile | None = None


class Run(BaseModel):
    """A run as the generator reports it (answer of start and rate, and `run` in the status)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    state: GeneratorState
    params: RunParams
    started_at: float
    ended_at: float | None = None


class GeneratorStatus(BaseModel):
    """GET /generator/status, and the final counts POST /generator/stop answers with."""

    model_config = ConfigDict(extra="forbid")

    state: GeneratorState
    run: Run | None = None
    sent: int = 0
    acknowledged: int = 0
    invalid: int = 0
    delivery_errors: int = 0
    in_flight: int = 0
    rate_1s: float = 0.0
    rate_10s: float = 0.0
    rate_requested: float = Field(
        default=0.0, description="What the run (its profile) asks for now; rate_1s is what it achieves."
    )
    offset_first: int | None = None
    offset_last: int | None = None
    last_error: str | None = None
    topic: str | None = None
    connected: bool | None = None
    next_offset: int | None = None
    not_delivered: int = Field(
        default=0, description="Events of an ended run that were not delivered (stop with the broker away)."
    )


class RunConflict(BaseModel):
    """409: a run is already active (start) or none is (rate)."""

    detail: str
    run: Run | None = None


class Problem(BaseModel):
    """Any other error of the generator or merger (401, 400, 503, 404)."""

    detail: str


class Alive(BaseModel):
    """GET /healthz of every component."""

    status: str
