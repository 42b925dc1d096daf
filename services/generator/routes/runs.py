"""Starting, steering and stopping a run, and the generator's status. The commands (`commands`)
are the gateway's only (app.py guards them with the internal secret); the status (`reads`) is
open, like the probes."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter

from contract.api import (
    GeneratorStatus,
    Problem,
    RateRequest,
    Run,
    RunConflict,
    RunParams,
    SetProfile,
    StartRequest,
    StartWithProfile,
)
from contract.generator_options import Profile, peak_rate
from services.generator.deps import EngineDep, Settings
from services.generator.errors import InvalidField
from services.generator.profiles import curve_of

commands = APIRouter(tags=["runs"])
reads = APIRouter(tags=["runs"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "Kafka is unreachable or the offset state cannot be written."},
    400: {"model": Problem, "description": "The generator refused the command."},
}


def _within(rate: float, max_rate: float, loc: list[str]) -> float:
    if rate <= max_rate and math.isfinite(rate):
        return rate
    msg = f"Input should be less than or equal to {max_rate:g} (GENERATOR_MAX_RATE)"
    raise InvalidField(loc, msg, rate, "less_than_equal")


def profile_peak(profile: Profile, max_rate: float) -> float:
    """A profile's highest rate, or the 422 naming its field: one that produces events, at most
    GENERATOR_MAX_RATE."""
    field, peak = peak_rate(profile)
    loc = ["profile", profile.kind, *field.split(".")]
    if peak <= 0:
        raise InvalidField(loc, "The profile never produces an event (its highest rate is 0)", peak)
    return _within(peak, max_rate, loc)


def checked_rate(rate: float, max_rate: float) -> float:
    """`rate`, or the 422 naming it beyond GENERATOR_MAX_RATE."""
    return _within(rate, max_rate, ["rate"])


@commands.post(
    "/generator/start",
    status_code=202,
    response_model=Run,
    responses={409: {"model": RunConflict, "description": "A run is active (named in `run`)."}, **REFUSALS},
)
async def start(body: StartRequest, engine: EngineDep, settings: Settings) -> Run:
    """Start a run at `rate`, or following `profile` (exactly one); 409 naming the active run if
    one is running."""
    if isinstance(body, StartWithProfile):
        rate, profile = profile_peak(body.profile, settings.max_rate), body.profile
    else:
        rate, profile = checked_rate(body.rate, settings.max_rate), None
    params = RunParams(
        rate=rate,
        profile=profile,
        count=body.count,
        duration_s=body.duration_s,
        seed=body.seed,
        invalid_ratio=body.invalid_ratio,
        fleet=body.fleet,
        faults=body.faults,
        first_index=body.first_index,
    )
    return engine.start_run(params).document()


@commands.put(
    "/generator/rate",
    response_model=Run,
    responses={409: {"model": RunConflict, "description": "No active run."}, **REFUSALS},
)
async def set_rate(body: RateRequest, engine: EngineDep, settings: Settings) -> Run:
    """Change the active run's rate, or give it a new profile from now, without restarting it."""
    if isinstance(body, SetProfile):
        rate = profile_peak(body.profile, settings.max_rate)
        return engine.set_rate(rate, curve_of(body.profile)).document()
    return engine.set_rate(checked_rate(body.rate, settings.max_rate)).document()


@commands.post("/generator/stop", response_model=GeneratorStatus, responses=REFUSALS)
async def stop(engine: EngineDep) -> GeneratorStatus:
    """Stop the active run, flush what is in flight, return the final counts (idempotent)."""
    if engine.run is None or not engine.run.active:
        return engine.status()
    return await engine.stop_run()


@reads.get("/generator/status", response_model=GeneratorStatus)
async def status(engine: EngineDep) -> GeneratorStatus:
    return engine.status()
