"""Request and response documents of the REST APIs: the generator's, shared by the generator (which
validates requests and writes the answers) and the gateway (which validates what it forwards and
what comes back). One model per route; the maximum rate is a generator setting
(GENERATOR_MAX_RATE), so only the generator checks it.

Answers allow extra fields: a newer generator may add some without breaking an older gateway."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GeneratorState = Literal["idle", "running", "completed", "stopped", "degraded", "failed"]


class StartRequest(BaseModel):
    """Body of POST /generator/start."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    rate: float = Field(
        gt=0,
        description="Events per second (below 1 works: 0.2 = one every 5 s); at most the generator's "
        "GENERATOR_MAX_RATE (422 naming the field beyond it).",
    )
    count: int | None = Field(default=None, ge=1, description="End the run after this many events.")
    duration_s: float | None = Field(default=None, gt=0, description="End the run after this many seconds.")
    seed: int | None = Field(
        default=None, description="Makes the run's content (all but eventTime/eventOffset) reproducible."
    )
    invalid_ratio: float = Field(default=0.0, ge=0, le=1, description="Fraction of deliberately malformed records.")


class RateRequest(BaseModel):
    """Body of PUT /generator/rate."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    rate: float = Field(gt=0, description="New events per second of the active run (at most GENERATOR_MAX_RATE).")


class RunParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    rate: float
    count: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    invalid_ratio: float = 0.0


class Run(BaseModel):
    """A run as the generator reports it (answer of start and rate, and `run` in the status)."""

    model_config = ConfigDict(extra="allow")

    id: str
    state: GeneratorState
    params: RunParams
    started_at: float
    ended_at: float | None = None


class GeneratorStatus(BaseModel):
    """GET /generator/status, and the final counts POST /generator/stop answers with."""

    model_config = ConfigDict(extra="allow")

    state: GeneratorState
    run: Run | None = None
    sent: int = 0
    acknowledged: int = 0
    invalid: int = 0
    delivery_errors: int = 0
    in_flight: int = 0
    rate_1s: float = 0.0
    rate_10s: float = 0.0
    offset_first: int | None = None
    offset_last: int | None = None
    last_error: str | None = None
    topic: str | None = None
    connected: bool | None = None
    next_offset: int | None = None


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
