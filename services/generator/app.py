"""The generator's REST API. The lifespan owns the Engine (Kafka producer, run and monitor
tasks) and stops it, flushing what is in flight."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from contract.api import Alive, GeneratorStatus, Problem, RateRequest, Run, RunConflict, StartRequest
from contract.generator_options import peak_rate
from service_kit.internal import UNAUTHORIZED, require_internal
from services.generator.engine import Engine
from services.generator.errors import (
    GeneratorError,
    KafkaUnavailableError,
    NoActiveRunError,
    OffsetStateError,
    RunActiveError,
)
from services.generator.extras import RunExtras, curve_for
from services.generator.metrics import Metrics
from services.generator.run import RunParams
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)


class Readiness(BaseModel):
    """GET /readyz (read by healthchecks, by status code)."""

    ready: bool
    kafka: str
    topic: str
    error: str | None = None


def _invalid(loc: list[str], msg: str, value: Any, kind: str = "value_error") -> JSONResponse:
    detail = [{"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}]
    return JSONResponse({"detail": _json_safe(detail)}, status_code=422)


def _over_max(rate: float, max_rate: float, loc: list[str] | None = None) -> JSONResponse | None:
    if rate <= max_rate and math.isfinite(rate):
        return None
    msg = f"Input should be less than or equal to {max_rate:g} (GENERATOR_MAX_RATE)"
    return _invalid(loc or ["rate"], msg, rate, "less_than_equal")


def _rate_or_profile(body: StartRequest | RateRequest, max_rate: float) -> tuple[float, JSONResponse | None]:
    """The run's peak rate, or the 422 naming the field: give `rate` or `profile` (not both), at
    most GENERATOR_MAX_RATE, and a profile that produces events."""
    if body.profile is None:
        if body.rate is None:
            return 0.0, _invalid(["rate"], "Field required (or give a `profile`)", None, "missing")
        return body.rate, _over_max(body.rate, max_rate)
    if body.rate is not None:
        return 0.0, _invalid(["profile"], "Give `rate` or `profile`, not both", body.profile.kind)
    field, peak = peak_rate(body.profile)
    loc = ["profile", body.profile.kind, *field.split(".")]
    if peak <= 0:
        return 0.0, _invalid(loc, "The profile never produces an event (its highest rate is 0)", peak)
    return peak, _over_max(peak, max_rate, loc)


def _json_safe(obj: Any) -> Any:
    """NaN and infinities (echoed back as the bad input) are not JSON: show them as text."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def create_app(settings: GeneratorSettings) -> FastAPI:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gen = Engine(settings, metrics)
        app.state.engine = gen
        await gen.start()
        log.info("generator up", extra={"topic": settings.topic, "port": settings.port})
        try:
            yield
        finally:
            log.info("generator shutting down: flushing in-flight events")
            await gen.close()

    app = FastAPI(
        title="devicestream generator",
        description="Produces random device events to Kafka at the rate you ask for.",
        lifespan=lifespan,
    )

    def generator(request: Request) -> Engine:
        return request.app.state.engine

    # start/stop/rate only from the gateway; status, metrics and probes are read-only and stay open.
    internal = [Depends(require_internal(settings.internal_secret, "generator"))]
    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"model": Problem, "description": "Kafka is unreachable or the offset state cannot be written."},
        400: {"model": Problem, "description": "The generator refused the command."},
    }

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(RunActiveError)
    async def _run_active(request: Request, exc: RunActiveError) -> JSONResponse:
        run = generator(request).run
        return JSONResponse({"detail": str(exc), "run": run.public() if run else None}, status_code=409)

    @app.exception_handler(NoActiveRunError)
    async def _no_run(request: Request, exc: NoActiveRunError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(KafkaUnavailableError)
    @app.exception_handler(OffsetStateError)
    async def _unavailable(request: Request, exc: GeneratorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(GeneratorError)
    async def _generator_error(request: Request, exc: GeneratorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %r", exc, exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"detail": f"unexpected error: {exc!r}"}, status_code=503)

    @app.post(
        "/generator/start",
        status_code=202,
        response_model=Run,
        dependencies=internal,
        responses={
            409: {"model": RunConflict, "description": "A run is active (named in `run`)."},
            **unavailable,
            **UNAUTHORIZED,
        },
    )
    async def start(body: StartRequest, request: Request) -> Any:
        """Start a run; 409 naming the active run if one is running."""
        rate, resp = _rate_or_profile(body, settings.max_rate)
        if resp is not None:
            return resp
        extras = None
        if body.profile or body.fleet or body.faults or body.first_index:
            extras = RunExtras(body.profile, body.fleet, body.faults, body.first_index)
        simple = body.model_dump(include={"count", "duration_s", "seed", "invalid_ratio"})
        run = generator(request).start_run(RunParams(rate=rate, **simple, extras=extras))
        return run.public()

    @app.put(
        "/generator/rate",
        response_model=Run,
        dependencies=internal,
        responses={409: {"model": RunConflict, "description": "No active run."}, **unavailable, **UNAUTHORIZED},
    )
    async def set_rate(body: RateRequest, request: Request) -> Any:
        """Change the active run's rate without restarting it."""
        rate, resp = _rate_or_profile(body, settings.max_rate)
        if resp is not None:
            return resp
        curve = curve_for(rate, RunExtras(profile=body.profile)) if body.profile is not None else None
        return generator(request).set_rate(rate, curve).public()

    @app.post(
        "/generator/stop",
        response_model=GeneratorStatus,
        dependencies=internal,
        responses={**unavailable, **UNAUTHORIZED},
    )
    async def stop(request: Request) -> GeneratorStatus:
        """Stop the active run, flush what is in flight, return the final counts (idempotent)."""
        gen = generator(request)
        if gen.run is None or not gen.run.active:
            return gen.status()
        return await gen.stop_run()

    @app.get("/generator/status", response_model=GeneratorStatus)
    async def status(request: Request) -> GeneratorStatus:
        return generator(request).status()

    @app.get("/healthz", response_model=Alive)
    async def healthz() -> Alive:
        return Alive(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not connected to Kafka (yet)."}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        gen = generator(request)
        ready = gen.producer is not None and gen.connected
        response.status_code = 200 if ready else 503
        return Readiness(
            ready=ready,
            kafka=settings.kafka_bootstrap_servers,
            topic=settings.topic,
            error=None if ready else gen.last_error or "connecting to Kafka",
        )

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
