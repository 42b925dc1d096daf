"""Request and response shapes of the routes the gateway fronts, duplicated from the documented
contracts (docs/DESIGN.md, the generator issue) so the gateway's OpenAPI is precise without
importing another service's code. Responses are passed through as the upstream wrote them; these
models document them and are lenient about extra fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GeneratorState = Literal["idle", "running", "completed", "stopped", "degraded", "failed"]


class StartRequest(BaseModel):
    """Body of POST /generator/start. The generator enforces its own maximum rate."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rate: float = Field(gt=0, description="Events per second (below 1 works: 0.2 = one every 5 s).")
    count: int | None = Field(default=None, ge=1, description="End the run after this many events.")
    duration_s: float | None = Field(default=None, gt=0, description="End the run after this many seconds.")
    seed: int | None = Field(default=None, description="Makes the run's content reproducible.")
    invalid_ratio: float | None = Field(default=None, ge=0, le=1, description="Fraction of malformed records.")


class RateRequest(BaseModel):
    """Body of PUT /generator/rate."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rate: float = Field(gt=0, description="New events-per-second of the active run.")


class RunParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    rate: float
    count: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    invalid_ratio: float | None = None


class Run(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    state: GeneratorState
    params: RunParams
    started_at: float | str | None = None
    ended_at: float | str | None = None


class GeneratorStatus(BaseModel):
    """GET /generator/status as the generator reports it (field names fixed by docs/DESIGN.md)."""

    model_config = ConfigDict(extra="allow")

    state: GeneratorState
    run: Run | None = None
    sent: int = 0
    acknowledged: int = 0
    invalid: int = 0
    delivery_errors: int = 0
    rate_1s: float = 0.0
    rate_10s: float = 0.0
    offset_first: int | None = None
    offset_last: int | None = None
    last_error: str | None = None


class ErrorBody(BaseModel):
    """Every error the gateway itself produces. `component` names the upstream that failed."""

    detail: str
    error: str
    component: str | None = None


class TailResponse(BaseModel):
    columns: list[str]
    rows: list[list[str]]
    file_size: int | None = Field(default=None, description="Size of merged.csv at the time of the read.")
    available: bool = Field(description="False until the merger has merged anything.")


class ComponentHealth(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded", "down"]
    reasons: list[str] = []


class Accounting(BaseModel):
    model_config = ConfigDict(extra="allow")

    events_in_kafka: int | None = None
    generator_acknowledged: int | None = None
    spark_input_rows: int | None = None
    spark_rows_out: int | None = None
    spark_rejects: int | None = None
    spark_events_without_readings: int | None = None
    rows_merged: int | None = None
    drained: bool = False
    consistent: bool | None = None
    notes: list[str] = []


class PipelineStatus(BaseModel):
    """GET /status."""

    model_config = ConfigDict(extra="allow")

    overall: Literal["ok", "degraded", "down"]
    reasons: list[str]
    checked_at: float
    components: dict[str, ComponentHealth]
    accounting: Accounting
    lag: dict[str, float | int | None] = {}
