"""The generator's errors. Each says its HTTP status and its answer's body; app.py maps the base
class to a response once (`on_generator_error`), and nothing else turns them into HTTP."""

from __future__ import annotations

import math
from typing import Any

from contract.api import Run


class GeneratorError(Exception):
    """Base class: the message is shown to the client as the error detail."""

    status_code = 400

    def body(self) -> dict[str, Any]:
        return {"detail": str(self)}


class RunActiveError(GeneratorError):
    """A run is already active: 409 naming it (contract.api.RunConflict)."""

    status_code = 409

    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.id} is active (state {run.state}); stop it first with POST /generator/stop")
        self.run = run

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "run": self.run.model_dump(mode="json")}


class NoActiveRunError(GeneratorError):
    """The request needs an active run and there is none (HTTP 409)."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__("no active run: start one with POST /generator/start")


class KafkaUnavailableError(GeneratorError):
    """Kafka is not reachable (yet) (HTTP 503)."""

    status_code = 503


class OffsetStateError(GeneratorError):
    """The generator's offset state file is unreadable or inconsistent (HTTP 500 is never used: 503)."""

    status_code = 503


class InvalidField(GeneratorError):
    """A request the schema accepts and the generator cannot serve (over GENERATOR_MAX_RATE, a
    profile that never produces an event): 422 naming the field, like a validation error."""

    status_code = 422

    def __init__(self, loc: list[str], msg: str, value: Any, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc, self.value, self.kind = loc, value, kind

    def body(self) -> dict[str, Any]:
        return {
            "detail": json_safe(
                [{"type": self.kind, "loc": ["body", *self.loc], "msg": str(self), "input": self.value}]
            )
        }


def json_safe(obj: Any) -> Any:
    """NaN and infinities (echoed back as the bad input) are not JSON: show them as text."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
