"""Response documents of the gateway's own routes. The generator's requests and answers are the
shared models of contract/api.py (re-exported here): the gateway validates what it forwards and
what comes back with the same models the generator uses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.api import GeneratorStatus, RateRequest, Run, RunConflict, StartRequest

__all__ = [
    "Accounting",
    "ComponentHealth",
    "ErrorBody",
    "GeneratorStatus",
    "PipelineStatus",
    "RateRequest",
    "Readiness",
    "Run",
    "RunConflict",
    "StartRequest",
    "TailResponse",
]


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


class Readiness(BaseModel):
    """GET /readyz: the gateway reaches the generator and the merger."""

    ready: bool
    generator: bool
    merger: bool
