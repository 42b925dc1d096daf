"""Response documents of the gateway's own routes. The generator's requests and answers are the
shared models of contract/api.py (re-exported here): the gateway validates what it forwards and
what comes back with the same models the generator uses. /status is contract/pipeline_status.py's
PipelineStatus (its readers are outside the gateway)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contract.api import GeneratorStatus, RateRequest, Run, RunConflict, StartRequest
from contract.pipeline_status import PipelineStatus

__all__ = [
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


class Readiness(BaseModel):
    """GET /readyz: the gateway reaches the generator and the merger."""

    ready: bool
    generator: bool
    merger: bool
