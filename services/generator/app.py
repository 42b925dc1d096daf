"""The generator's REST API. The lifespan owns the Engine (Kafka producer, run and monitor
tasks) and stops it, flushing what is in flight.

create_app only assembles: the lifespan (which puts what the routes need on `app.state`, read by
deps.py), the error handlers (the generator's errors mapped once, by their base class), and the
routers of routes/ (the run commands behind the internal secret)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from service_kit.internal import UNAUTHORIZED, require_internal
from services.generator.engine import Engine
from services.generator.errors import GeneratorError, json_safe
from services.generator.metrics import Metrics
from services.generator.routes import probes, runs
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)


async def on_generator_error(request: Request, e: GeneratorError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status_code)


async def on_invalid_request(request: Request, e: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": json_safe(jsonable_encoder(e.errors()))}, status_code=422)


async def on_unexpected(request: Request, e: Exception) -> JSONResponse:
    log.error("unexpected error: %r", e, exc_info=e, extra={"path": request.url.path})
    return JSONResponse({"detail": f"unexpected error: {e!r}"}, status_code=503)


def lifespan_of(settings: GeneratorSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Starts the engine (it connects to Kafka in the background) for the app's life; puts it,
    the settings and the metrics registry on `app.state` for deps.py."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = CollectorRegistry()
        engine = Engine(settings, Metrics(registry))
        app.state.settings = settings
        app.state.registry = registry
        app.state.engine = engine
        await engine.start()
        log.info("generator up", extra={"topic": settings.topic, "port": settings.port})
        try:
            yield
        finally:
            log.info("generator shutting down: flushing in-flight events")
            await engine.close()

    return lifespan


def create_app(settings: GeneratorSettings) -> FastAPI:
    app = FastAPI(
        title="devicestream generator",
        description="Produces random device events to Kafka at the rate you ask for.",
        lifespan=lifespan_of(settings),
    )
    app.exception_handler(RequestValidationError)(on_invalid_request)
    app.exception_handler(GeneratorError)(on_generator_error)
    app.exception_handler(Exception)(on_unexpected)
    # start/stop/rate only from the gateway; status, metrics and probes are read-only and stay open.
    internal = [Depends(require_internal(settings.internal_secret, "generator"))]
    app.include_router(runs.commands, dependencies=internal, responses=UNAUTHORIZED)
    app.include_router(runs.reads)
    app.include_router(probes.router)
    return app
