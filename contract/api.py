"""Request and response documents of the REST APIs: the generator's, shared by the generator (which
validates requests and writes the answers) and the gateway (which validates what it forwards and
what comes back). One model per route; the maximum rate is a generator setting
(GENERATOR_MAX_RATE), so only the generator checks it.

Answers refuse undeclared fields (extra="forbid": the generator builds them from these models), but
for a run's `params`, which carry the run's options (profile, fleet, faults) as the generator took them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.generator_options import FaultOptions, FleetOptions, Profile

GeneratorState = Literal["idle", "running", "completed", "stopped", "degraded", "failed"]


class StartRequest(BaseModel):
    """Body of POST /generator/start: `rate` or `profile`, the rest optional."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"rate": 1000, "count": 60000, "seed": 1},
                {"profile": {"kind": "ramp", "from_rate": 100, "to_rate": 5000, "over_s": 60}, "duration_s": 120},
                {
                    "rate": 500,
                    "count": 10000,
                    "seed": 7,
                    "fleet": {"customers": 5, "devices_per_customer": 4},
                    "faults": {"invalid_ratio": 0.01, "late_ratio": 0.02, "resend_ratio": 0.01},
                },
            ]
        },
    )

    rate: float | None = Field(
        default=None,
        gt=0,
        description="Events per second (below 1 works: 0.2 = one every 5 s); at most the generator's "
        "GENERATOR_MAX_RATE (422 naming the field beyond it). Give this or `profile`.",
    )
    count: int | None = Field(default=None, ge=1, description="End the run after this many events.")
    duration_s: float | None = Field(default=None, gt=0, description="End the run after this many seconds.")
    seed: int | None = Field(
        default=None, description="Makes the run's content (all but eventTime/eventOffset) reproducible."
    )
    invalid_ratio: float = Field(default=0.0, ge=0, le=1, description="Fraction of deliberately malformed records.")
    profile: Profile | None = Field(default=None, description="A rate that changes over the run (instead of `rate`).")
    fleet: FleetOptions | None = Field(default=None, description="Readings from a seeded fleet of devices.")
    faults: FaultOptions | None = Field(default=None, description="Faults written to the run's ledger.")
    first_index: int = Field(
        default=0, ge=0, description="Start a seeded run's content at this record (continue it after a restart)."
    )


class RateRequest(BaseModel):
    """Body of PUT /generator/rate: `rate` or `profile`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    rate: float | None = Field(
        default=None, gt=0, description="New events per second of the active run (at most GENERATOR_MAX_RATE)."
    )
    profile: Profile | None = Field(default=None, description="A new rate profile, from now (instead of `rate`).")


class RunParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    rate: float
    count: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    invalid_ratio: float = 0.0


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
