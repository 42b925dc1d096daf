"""The merger's HTTP API: merged.csv (committed bytes only), the filtered reads, the devices'
figures, status, health and metrics. The lifespan owns the watcher (the merge loop), the device
tracker and the query service, and stops them, letting a commit in progress finish.

create_app only assembles: the lifespan (which puts what the routes need on `app.state`, read by
deps.py), the error handler (the merger's errors mapped once, by their base class), and the routers
of routes/ (the data behind the internal secret)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from service_kit.internal import UNAUTHORIZED, require_internal
from services.merger.deps import committed_state
from services.merger.device_tracker import DeviceTracker
from services.merger.errors import MergerError
from services.merger.metrics import MergerMetrics, StateCollector
from services.merger.query import reset_tmp_dir
from services.merger.query_api import QueryService
from services.merger.routes import devices, download, probes, query, status
from services.merger.settings import MergerSettings
from services.merger.watcher import Watcher

log = logging.getLogger(__name__)


async def on_merger_error(request: Request, e: MergerError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status_code, headers=e.headers())


def lifespan_of(settings: MergerSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Runs the watcher and the device tracker for the app's life; puts them, the query service,
    the settings and the metrics registry on `app.state` for deps.py."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = MergerMetrics(settings.data_dir)
        watcher = Watcher(settings, metrics)
        metrics.registry.register(StateCollector(lambda: watcher.state))
        tracker = DeviceTracker(
            settings.merged_csv,
            settings.devices_file,
            lambda: watcher.state,
            window_s=settings.devices_window_s,
            max_devices=settings.devices_max,
            snapshot_interval_s=settings.devices_snapshot_interval_s,
            registry=metrics.registry,
        )
        queries = QueryService(settings, lambda: committed_state(watcher), metrics.registry)
        app.state.settings = settings
        app.state.started_at = time.time()  # Last-Modified of the header-only file before the first merge
        app.state.watcher, app.state.tracker, app.state.queries = watcher, tracker, queries
        app.state.registry = metrics.registry
        await asyncio.to_thread(reset_tmp_dir, queries.tmp)  # answers left behind by a crash
        task = asyncio.create_task(watcher.run(), name="merger-watcher")
        devices_task = asyncio.create_task(tracker.run(), name="merger-devices")
        try:
            yield
        finally:
            tracker.stop()
            await devices_task
            queries.close()
            watcher.stop()
            # Not cancelled: a commit running in its worker thread finishes and is recorded.
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("merger stopped")

    return lifespan


def create_app(settings: MergerSettings) -> FastAPI:
    app = FastAPI(
        title="devicestream merger",
        version="0.1.0",
        description="Merges the Spark job's batch files into one merged.csv, crash-safely, and serves it.",
        lifespan=lifespan_of(settings),
    )
    app.exception_handler(MergerError)(on_merger_error)
    # The data only to the gateway (which applies GATEWAY_PROTECT_READS); status, metrics and probes
    # are read-only and stay open.
    internal = [Depends(require_internal(settings.internal_secret, "merger"))]
    for router in (query.router, devices.router, download.router):
        app.include_router(router, dependencies=internal, responses=UNAUTHORIZED)
    app.include_router(status.router)
    app.include_router(probes.router)
    return app
