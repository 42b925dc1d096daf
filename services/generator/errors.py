"""The generator's errors; app.py maps them to HTTP responses."""

from __future__ import annotations


class GeneratorError(Exception):
    """Base class: the message is shown to the client as the error detail."""


class RunActiveError(GeneratorError):
    """A run is already active (HTTP 409)."""

    def __init__(self, run_id: str, state: str) -> None:
        super().__init__(f"run {run_id} is active (state {state}); stop it first with POST /generator/stop")
        self.run_id = run_id


class NoActiveRunError(GeneratorError):
    """The request needs an active run and there is none (HTTP 409)."""

    def __init__(self) -> None:
        super().__init__("no active run: start one with POST /generator/start")


class KafkaUnavailableError(GeneratorError):
    """Kafka is not reachable (yet) (HTTP 503)."""


class OffsetStateError(GeneratorError):
    """The generator's offset state file is unreadable or inconsistent (HTTP 500 is never used: 503)."""
