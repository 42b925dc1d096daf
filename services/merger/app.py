"""The merger's HTTP API: merged.csv (committed bytes only), status, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from services.merger.download import Snapshot, etag_matches, parse_range
from services.merger.errors import MergerError, NothingMergedError, RangeNotSatisfiableError
from services.merger.metrics import MergerMetrics
from services.merger.settings import MergerSettings
from services.merger.watcher import Watcher

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class Freshness(BaseModel):
    last_s: float | None
    p50_s: float | None
    p99_s: float | None


class QuarantinedBatch(BaseModel):
    file: str
    reason: str
    at: float


class SourceEvent(BaseModel):
    """topic_recreated, offsets_skipped, offsets_backwards or state_rebuilt (README: Guarantees)."""

    kind: str
    at: float
    detail: str
    lineage: str
    batch_id: int | None


class MergerStatus(BaseModel):
    """The fields the gateway aggregates (docs/DESIGN.md), plus last_error and the exactly-once keys:
    the checkpoint lineage followed, the topic (and Kafka's topic id), the next offset to merge per
    partition, rows dropped as already merged, and the source events an operator must know about."""

    batches_merged: int
    last_batch_id: int | None
    rows_merged: int
    file_size: int
    empty_batches: int
    quarantined: list[QuarantinedBatch]
    newest_batch_id: int | None
    lag_batches: int
    waiting_for_batch: int | None
    waiting_since: float | None
    last_merge_at: float | None
    freshness: Freshness
    last_error: str | None
    lineage: str
    topic: str | None
    topic_id: str | None
    merged_offsets: dict[str, int]
    rows_skipped: int
    events: list[SourceEvent]


class NotReadyError(MergerError):
    """The merger has not loaded its state (yet), or cannot."""


def _read_range(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Chunks of `path` from `start`, `length` bytes in all: memory flat whatever the file size."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining = length
        while remaining > 0:
            chunk = f.read(min(CHUNK_SIZE, remaining))
            if not chunk:  # cannot happen for committed bytes; never hang a client on it
                log.error("merged.csv shorter than its committed length", extra={"path": str(path)})
                return
            remaining -= len(chunk)
            yield chunk


def create_app(settings: MergerSettings) -> FastAPI:
    metrics = MergerMetrics()
    watcher = Watcher(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(watcher.run(), name="merger-watcher")
        try:
            yield
        finally:
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

    @app.exception_handler(NothingMergedError)
    async def _nothing_merged(request: Request, exc: NothingMergedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(RangeNotSatisfiableError)
    async def _unsatisfiable(request: Request, exc: RangeNotSatisfiableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})

    def snapshot() -> Snapshot:
        state = watcher.state
        if state is None:
            raise NotReadyError(watcher.fatal_error or "the merger is still loading its state")
        if state.batches_merged == 0 or state.last_merge_at is None:
            raise NothingMergedError(
                "nothing merged yet: merged.csv is served once the first batch with rows is merged"
            )
        return Snapshot(state.generation, state.committed_size, state.last_merge_at)

    @app.api_route(
        "/merged.csv",
        methods=["GET", "HEAD"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/csv": {}}, "description": "merged.csv up to its committed length"},
            206: {"description": "the requested byte range"},
            304: {"description": "not modified (If-None-Match)"},
            404: {"description": "nothing merged yet"},
            416: {"description": "range not satisfiable"},
        },
    )
    def merged_csv(request: Request) -> Response:
        """merged.csv up to its committed length: one header, then whole rows only, whatever is being
        appended meanwhile. Supports ETag/If-None-Match, HEAD and a single byte Range."""
        snap = snapshot()
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
        return StreamingResponse(
            _read_range(settings.merged_csv, start, length),
            status_code=status,
            headers=headers,
            media_type=CSV_MEDIA_TYPE,
        )

    @app.get("/merger/status")
    async def status() -> MergerStatus:
        """Progress of the merge (the gateway aggregates this document)."""
        return MergerStatus.model_validate(watcher.status())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """State loaded and merged.csv recovered; input and output folders writable."""
        problems: list[str] = []
        if watcher.fatal_error:
            problems.append(watcher.fatal_error)
        elif not watcher.ready:
            problems.append("state not loaded yet")
        for folder in (settings.rows_dir, settings.merger_dir):
            if not os.access(folder, os.W_OK | os.X_OK):
                problems.append(f"folder not writable: {folder}")
        body: dict[str, Any] = {"ready": not problems, "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """Prometheus metrics of this merger."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
