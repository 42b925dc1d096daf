"""The merger's HTTP API: merged.csv (committed bytes only), status, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from contract.api import Alive, Problem
from contract.merger_status import MergerStatus
from service_kit.internal import UNAUTHORIZED, require_internal
from services.merger.compacted import Part, SegmentReader, open_part
from services.merger.device_tracker import DeviceTracker
from services.merger.devices_api import devices_router
from services.merger.download import Snapshot, etag_matches, parse_range
from services.merger.errors import (
    InvalidQueryError,
    NotReadyError,
    QueriesBusyError,
    QueryFailedError,
    RangeNotSatisfiableError,
    UnknownDeviceError,
)
from services.merger.metrics import MergerMetrics
from services.merger.query import reset_tmp_dir
from services.merger.query_api import (
    FILTER_RESPONSES,
    QueryService,
    RowQueryParam,
    add_get_and_head,
    download_headers,
    query_router,
)
from services.merger.segments import stream_parts
from services.merger.settings import MergerSettings
from services.merger.state import MergerState
from services.merger.watcher import Watcher

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class Readiness(BaseModel):
    """GET /readyz (read by healthchecks, by status code)."""

    ready: bool
    problems: list[str]
    #: What keeps it from merging but needs no restart (a full disk: retried by itself).
    notes: list[str] = []


def _open_parts(parts: list[Part]) -> list[tuple[SegmentReader, int, int]]:
    """Open every part's file now: a segment retention removes meanwhile stays readable to this
    answer (a consistent snapshot). Raises FileNotFoundError when one is already gone."""
    opened: list[tuple[SegmentReader, int, int]] = []
    try:
        for part in parts:  # (a compacted segment's Parquet copy renders back to its CSV bytes)
            opened.append((open_part(part), part.offset, part.length))
    except BaseException:
        for f, _, _ in opened:
            f.close()
        raise
    return opened


def _read_range(parts: list[tuple[SegmentReader, int, int]], start: int, length: int) -> Iterator[bytes]:
    """Chunks of the parts' bytes (one after the other) from `start`, `length` bytes in all: memory
    flat whatever the size. Closes the files."""
    try:
        pos = 0
        for f, offset, size in parts:
            begin, end = max(start, pos), min(start + length, pos + size)
            pos += size
            if begin >= end:
                continue
            f.seek(offset + begin - (pos - size))
            remaining = end - begin
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:  # cannot happen for committed bytes; never hang a client on it
                    log.error("a segment is shorter than its committed length", extra={"path": f.name})
                    return
                remaining -= len(chunk)
                yield chunk
    finally:
        for f, _, _ in parts:
            f.close()


def create_app(settings: MergerSettings) -> FastAPI:
    metrics = MergerMetrics(settings.data_dir)
    watcher = Watcher(settings, metrics)
    started_at = time.time()  # Last-Modified of the header-only file before the first merge
    tracker = DeviceTracker(
        settings.merged_csv,
        settings.devices_file,
        lambda: watcher.state,
        window_s=settings.devices_window_s,
        max_devices=settings.devices_max,
        snapshot_interval_s=settings.devices_snapshot_interval_s,
        registry=metrics.registry,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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

    app = FastAPI(
        title="devicestream merger",
        version="0.1.0",
        description="Merges the Spark job's batch files into one merged.csv, crash-safely, and serves it.",
        lifespan=lifespan,
    )
    app.state.watcher = watcher
    app.state.metrics = metrics

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(InvalidQueryError)
    async def _invalid_query(request: Request, exc: InvalidQueryError) -> JSONResponse:
        # The shape of FastAPI's own validation errors: one way to read a 422.
        detail = [{"loc": ["query", exc.field], "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(QueriesBusyError)
    async def _queries_busy(request: Request, exc: QueriesBusyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(QueryFailedError)
    async def _query_failed(request: Request, exc: QueryFailedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(UnknownDeviceError)
    async def _unknown_device(request: Request, exc: UnknownDeviceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RangeNotSatisfiableError)
    async def _unsatisfiable(request: Request, exc: RangeNotSatisfiableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})

    def committed_state() -> MergerState:
        state = watcher.state
        if state is None:
            raise NotReadyError(watcher.fatal_error or "the merger is still loading its state")
        return state

    queries = QueryService(settings, committed_state, metrics.registry)
    # The data only to the gateway (which applies GATEWAY_PROTECT_READS); status, metrics and probes
    # are read-only and stay open.
    internal = [Depends(require_internal(settings.internal_secret, "merger"))]
    app.include_router(query_router(queries), dependencies=internal, responses=UNAUTHORIZED)
    app.include_router(devices_router(tracker), dependencies=internal, responses=UNAUTHORIZED)

    def snapshot() -> tuple[Snapshot, list[Part]]:
        state = committed_state()
        # Before the first row is merged the committed prefix is the header line alone: that is an
        # answer (an empty table), so readers pointed at merged.csv work from the first second.
        last_modified = state.last_merge_at if state.last_merge_at is not None else started_at
        parts = stream_parts(state, settings.merger_dir)
        size = sum(p[2] for p in parts)
        return Snapshot(state.generation, size, last_modified, state.retained[0].seq), parts

    async def merged_csv(request: Request, q: RowQueryParam) -> Response:
        """merged.csv up to its committed length: one header, then whole rows only, whatever is being
        appended meanwhile (in segments: the retained ones, oldest first, as one file). Supports
        ETag/If-None-Match, HEAD and a single byte Range. With filters,
        only the matching rows and columns (same header line for the columns kept), without Range."""
        if not q.is_unfiltered:
            return await queries.answer(request, q, "csv")
        snap, parts = snapshot()
        headers = {
            "ETag": snap.etag,
            "Last-Modified": snap.last_modified_http,
            "Accept-Ranges": "bytes",
            "Cache-Control": "no-cache",
        }
        if etag_matches(request.headers.get("if-none-match"), snap.etag):
            return Response(status_code=304, headers=headers)
        byte_range = parse_range(request.headers.get("range"), snap.size)
        if_range = request.headers.get("if-range")
        if byte_range is not None and if_range and if_range.strip() not in (snap.etag, snap.last_modified_http):
            byte_range = None  # the client's copy is of another version: send it all
        status, start, length = 200, 0, snap.size
        if byte_range is not None:
            start, end = byte_range
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{snap.size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=CSV_MEDIA_TYPE)
        try:
            opened = _open_parts(parts)
        except FileNotFoundError:  # retention removed a segment just now: the next snapshot
            return await merged_csv(request, q)
        return StreamingResponse(
            _read_range(opened, start, length),
            status_code=status,
            headers=headers,
            media_type=CSV_MEDIA_TYPE,
        )

    add_get_and_head(
        app,
        "/merged.csv",
        merged_csv,
        response_class=StreamingResponse,
        dependencies=[*internal, Depends(download_headers)],
        responses={
            **UNAUTHORIZED,
            200: {
                "content": {"text/csv": {}},
                "description": "merged.csv up to its committed length (the header line alone before the first row)",
            },
            206: {"content": {"text/csv": {}}, "description": "the requested byte range"},
            304: {"description": "not modified (If-None-Match)"},
            416: {"model": Problem, "description": "range not satisfiable"},
            422: FILTER_RESPONSES[422],
            503: FILTER_RESPONSES[503],
        },
    )

    @app.get("/merger/status", response_model=MergerStatus)
    async def status() -> MergerStatus:
        """Progress of the merge (the gateway aggregates this document)."""
        return watcher.status()

    @app.get("/healthz", response_model=Alive)
    async def healthz() -> Alive:
        """The process is alive."""
        return Alive(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
    )
    async def readyz(response: Response) -> Readiness:
        """State loaded and merged.csv recovered; input and output folders writable. A full disk
        keeps it ready (it serves merged.csv and resumes by itself; a restart frees no space): it
        is in `notes`, and in /merger/status `write_blocked`."""
        problems: list[str] = []
        blocked = watcher.write_blocked
        notes = [] if blocked is None else [f"merging paused: {blocked.condition} in {blocked.folder} (retrying)"]
        if watcher.fatal_error:
            problems.append(watcher.fatal_error)
        elif not watcher.ready:
            problems.append("state not loaded yet" + (f" ({notes[0]})" if notes else ""))
        for folder in (settings.rows_dir, settings.merger_dir):
            if not os.access(folder, os.W_OK | os.X_OK):
                problems.append(f"folder not writable: {folder}")
        response.status_code = 200 if not problems else 503
        return Readiness(ready=not problems, problems=problems, notes=notes)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def prometheus_metrics() -> Response:
        """Prometheus metrics of this merger."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
