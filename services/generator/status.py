"""The generator's status document (GET /generator/status, and the final counts of
POST /generator/stop): contract.api.GeneratorStatus, built here and nowhere else."""

from __future__ import annotations

import time

from contract.api import GeneratorStatus
from services.generator.run import LiveRun


def run_status(
    run: LiveRun | None, *, topic: str, connected: bool, next_offset: int | None, last_error: str | None
) -> GeneratorStatus:
    """The status for the current run, if any. The rates and counts of an active run are live;
    an ended run keeps its counts and shows what it did not deliver."""
    if run is None:
        return GeneratorStatus(
            state="idle", topic=topic, connected=connected, next_offset=next_offset, last_error=last_error
        )
    now = time.monotonic()
    active = run.active
    return GeneratorStatus(
        state=run.state,
        run=run.document(),
        sent=run.sent,
        acknowledged=run.acknowledged,
        invalid=run.invalid,
        delivery_errors=run.delivery_errors,
        in_flight=run.in_flight,
        rate_1s=round(run.rate_over(1.0, now), 3) if active else 0.0,
        rate_10s=round(run.rate_over(10.0, now), 3) if active else 0.0,
        # what the run (its profile) asks for now; rate_1s is what it achieves
        rate_requested=round(run.requested_rate(now), 3) if active else 0.0,
        offset_first=run.offset_first,
        offset_last=run.offset_last,
        not_delivered=run.not_delivered if not active else 0,
        topic=topic,
        connected=connected,
        next_offset=next_offset,
        last_error=last_error,
    )
