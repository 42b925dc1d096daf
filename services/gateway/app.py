"""The gateway: one door to the pipeline (generator commands, merged.csv, pipeline status, the
dashboard). Upstream services are reached over HTTP through two httpx.AsyncClients owned by the
lifespan (control calls and downloads, apart); Kafka and the Spark progress file are read for
/status. No other service's code is imported.

create_app only assembles: the lifespan (which puts what the routes need on `app.state`, read by
services/gateway/deps.py), the error handlers, the routers of services/gateway/routes/ and the middlewares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from contract.internal import outgoing_headers
from services.gateway.auth import document_checks_as_configured
from services.gateway.deps import get_metrics
from services.gateway.downloads import DownloadPool, DownloadSlots
from services.gateway.errors import DownloadsBusy, GatewayError, UpstreamError
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import BodySizeLimit, BrowserGuard, RequestMetrics
from services.gateway.responses import GUARD_ERRORS
from services.gateway.routes import dashboard, data, generator, report, status
from services.gateway.series import SeriesRecorder
from services.gateway.settings import GatewaySettings
from services.gateway.status_snapshot import StatusService

log = logging.getLogger(__name__)


def _error_response(e: GatewayError) -> JSONResponse:
    headers = {"www-authenticate": 'Bearer realm="devicestream"'} if e.status_code == 401 else {}
    if e.retry_after_s is not None:
        headers["retry-after"] = str(e.retry_after_s)
    return JSONResponse(e.body(), status_code=e.status_code, headers=headers)


async def on_gateway_error(request: Request, e: GatewayError) -> JSONResponse:
    if isinstance(e, UpstreamError):
        get_metrics(request).upstream_errors.labels(e.component or "-", e.error).inc()
    elif isinstance(e, DownloadsBusy):
        get_metrics(request).download_refusals.inc()
    return _error_response(e)


async def on_unexpected(request: Request, e: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=e, extra={"path": request.url.path})
    return JSONResponse(
        {"detail": "internal error in the gateway", "error": "internal", "component": "gateway"}, status_code=500
    )


def lifespan_of(
    settings: GatewaySettings, metrics: GatewayMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens the upstream clients and the /status service for the app's life; puts them, the
    settings and the metrics on `app.state` for services/gateway/deps.py."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.status_timeout_s, connect=settings.connect_timeout_s)
        # Every upstream call carries the stack's internal secret (contract/internal.py).
        headers = outgoing_headers(settings.internal_secret)
        # Two pools: status probes and generator commands never wait behind (stalled) downloads.
        control_limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        download_limits = httpx.Limits(
            max_connections=settings.max_downloads, max_keepalive_connections=min(20, settings.max_downloads)
        )
        async with (
            httpx.AsyncClient(timeout=timeout, limits=control_limits, headers=headers, trust_env=False) as client,
            httpx.AsyncClient(timeout=timeout, limits=download_limits, headers=headers, trust_env=False) as downloads,
        ):
            status = StatusService(settings, client)
            app.state.settings = settings
            app.state.metrics = metrics
            app.state.client = client
            app.state.download_pool = DownloadPool(downloads, DownloadSlots(settings.max_downloads), headers)
            app.state.status = status
            # the run's time series for `devicestream report` (series.py); GET /report renders 2 at once
            app.state.report_slots = asyncio.Semaphore(2)
            recorder = asyncio.create_task(SeriesRecorder(settings, status).run_forever(), name="run-series")
            log.info(
                "gateway up",
                extra={
                    "generator": settings.generator_base(),
                    "merger": settings.merger_base(),
                    "kafka": settings.kafka_bootstrap_servers or "-",
                    "auth": settings.api_key is not None,
                },
            )
            try:
                yield
            finally:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder
                await status.aclose()

    return lifespan


def create_app(settings: GatewaySettings) -> FastAPI:
    metrics = GatewayMetrics()
    app = FastAPI(
        title="devicestream gateway",
        version="0.1.0",
        description="One entry point to the devicestream pipeline: generator control, merged.csv, "
        "pipeline status and a live dashboard at `/`.",
        lifespan=lifespan_of(settings, metrics),
        responses=GUARD_ERRORS,
    )
    app.exception_handler(GatewayError)(on_gateway_error)
    app.exception_handler(Exception)(on_unexpected)
    routers = (generator.router, data.router, status.router, dashboard.router, report.router)
    for router in routers:
        app.include_router(router)
    document_checks_as_configured(app, settings, routers)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")

    # ---- middlewares (outermost last) ------------------------------------------------------------
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT"],
            allow_headers=[
                "content-type",
                "x-api-key",
                "authorization",
                "range",
                "if-none-match",
                "if-modified-since",
                "if-range",
            ],
            expose_headers=["etag", "content-length", "content-range", "last-modified", "accept-ranges"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # /metrics answers any Host, like the probes: Prometheus scrapes it by the container's name
    # (gateway:8000 in compose.yaml); GATEWAY_PROTECT_READS still guards it.
    app.add_middleware(
        BrowserGuard,
        allowed_hosts=settings.host_names(),
        trusted_origins=settings.cors_origins,
        host_check_exempt=frozenset({"/healthz", "/readyz", "/metrics"}),
    )
    app.add_middleware(RequestMetrics, counter=metrics.requests)
    return app
