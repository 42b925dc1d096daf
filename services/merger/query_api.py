"""HTTP edge of the filtered reads: the query parameters (one dependency shared by merged.csv and
merged.parquet) and the answer (computed into a temp file by the streaming engine, then streamed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CollectorRegistry, Gauge, Histogram

from contract.query import DownloadHeaders, RowFilters
from services.merger.download import etag_matches
from services.merger.errors import QueriesBusyError, QueryFailedError
from services.merger.query import (
    CHUNK_SIZE,
    AnswerFile,
    Format,
    RowQuery,
    Source,
    build_query,
    might_match,
    pin_sources,
    tmp_dir,
)
from services.merger.settings import MergerSettings
from services.merger.state import MergerState

log = logging.getLogger(__name__)

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
PARQUET_MEDIA_TYPE: Final = "application/vnd.apache.parquet"
#: How often a waiting query or a growing answer is looked at (and the client's presence checked).
POLL_S: Final = 0.02
#: The status logged for a request whose client left before the answer (nginx's "client closed").
CLIENT_GONE: Final = 499
#: Plans of a query on the committed state before it gives up (each follows a removal of one of
#: its files by compaction or retention: a second one is already rare).
PLAN_ATTEMPTS: Final = 5


def row_query(filters: Annotated[RowFilters, Query()]) -> RowQuery:
    """The filters of a merged.csv / merged.parquet request (InvalidQueryError -> 422 naming the field)."""
    return build_query(
        since=filters.since,
        until=filters.until,
        device_ids=filters.device_ids,
        customer_ids=filters.customer_ids,
        statuses=filters.statuses,
        columns=filters.columns,
        limit=filters.limit,
    )


RowQueryParam = Annotated[RowQuery, Depends(row_query)]


def download_headers(headers: Annotated[DownloadHeaders, Header()]) -> None:
    """Declares merged.csv's request headers in the OpenAPI document (the route reads them)."""


class QueryService:
    """Answers a RowQuery from the committed prefix of merged.csv. At most `queries_at_once` are
    computed, each in a thread of this service's own pool (never the pool of the sync routes:
    merged.csv, /devices and /metrics keep answering); at most `query_queue_max` wait, in the event
    loop without a thread; one more gets 503 with Retry-After. A client that leaves while its query
    waits, computes or streams stops it (its temp file is removed)."""

    def __init__(
        self, settings: MergerSettings, state: Callable[[], MergerState], registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.state = state  # the current committed state (raises NotReadyError before it is loaded)
        self.tmp = tmp_dir(settings.merger_dir)
        self.at_once = settings.queries_at_once
        self.queue_max = settings.query_queue_max
        self.running = 0
        self.waiting = 0
        self._turn: asyncio.Event | None = None  # set when a place frees (made on the loop)
        self._workers = ThreadPoolExecutor(self.at_once, thread_name_prefix="merger-query")
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="merger-query-read")
        self._read_in_place = False  # (set once the files could not be linked: said once)
        registry = registry if registry is not None else CollectorRegistry()  # never the global one
        self.duration = Histogram(
            "merger_query_duration_seconds",
            "Time to compute a filtered merged.csv / merged.parquet answer (written while it streams).",
            ["format"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )
        Gauge("merger_queries_running", "Filtered answers being computed.", registry=registry).set_function(
            lambda: self.running
        )
        Gauge("merger_queries_waiting", "Filtered answers waiting for their turn.", registry=registry).set_function(
            lambda: self.waiting
        )

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._readers.shutdown(wait=False, cancel_futures=True)

    async def _take_turn(self, request: Request) -> bool:
        """Wait for a place to compute; False when the client left meanwhile. QueriesBusyError when
        the queue is full."""
        if self.running < self.at_once and not self.waiting:
            self.running += 1
            return True
        if self.waiting >= self.queue_max:
            raise QueriesBusyError(
                f"{self.running} queries are running and {self.waiting} waiting, the most this merger keeps "
                "(MERGER_QUERIES_AT_ONCE, MERGER_QUERY_QUEUE_MAX); retry later"
            )
        if self._turn is None:
            self._turn = asyncio.Event()
        self.waiting += 1
        try:
            while self.running >= self.at_once:
                if await request.is_disconnected():
                    return False
                self._turn.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._turn.wait(), POLL_S * 5)
            self.running += 1
            return True
        finally:
            self.waiting -= 1

    def _release(self, _: object = None) -> None:
        self.running -= 1
        if self._turn is not None:
            self._turn.set()

    async def answer(self, request: Request, q: RowQuery, fmt: Format) -> Response:
        """The rows of `q` in the committed state when its turn comes, computed in a worker thread
        into a temp file that is streamed as it grows (headers: answer_headers)."""
        headers = answer_headers(self.state(), q, fmt)
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        media_type = PARQUET_MEDIA_TYPE if fmt == "parquet" else CSV_MEDIA_TYPE
        if request.method == "HEAD":  # the length is not known before the answer is complete
            return Response(status_code=200, headers=headers, media_type=media_type)
        if not await self._take_turn(request):
            return Response(status_code=CLIENT_GONE)
        answer = AnswerFile(self.tmp / f"{uuid.uuid4().hex}.{fmt}")
        pinning = None
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            pinning = self._readers.submit(self._pinned, q, answer.pins)
            state, sources = await asyncio.wrap_future(pinning)
            headers = answer_headers(state, q, fmt)  # (the state it answers: newer after a wait for a turn)

            def work() -> None:
                with self.duration.labels(fmt).time():
                    answer.write(sources, q, fmt)

            running = self._workers.submit(work)  # (the writer removes the pins once done)
        except BaseException:
            self._release()
            if pinning is not None:  # (when the pins are made: at once, or once a left request's thread is done)
                pinning.add_done_callback(lambda _: shutil.rmtree(answer.pins, ignore_errors=True))
            raise
        asyncio.wrap_future(running).add_done_callback(self._release)  # (on the event loop, as the counts)
        # The status line goes out with the first bytes: a query that fails before writing any
        # (I/O error...) still gets a proper error instead of an empty 200.
        while (started := answer.started()) is None:
            if await request.is_disconnected():
                answer.abandon()
                return Response(status_code=CLIENT_GONE)
            await asyncio.sleep(POLL_S)
        if not started:
            answer.abandon()
            raise QueryFailedError(f"the query could not be answered: {answer.error!r}")
        # Streamed while it is computed (chunked, no Content-Length): the first bytes leave at once.
        return StreamingResponse(self._chunks(request, answer), headers=headers, media_type=media_type)

    def _pinned(self, q: RowQuery, into: Path) -> tuple[MergerState, list[Source]]:
        """The committed state now and the sources of `q` in it, pinned (query.pin_sources). When
        compaction or retention removed one between the two, planned again: the state that removed
        it no longer lists it. Read in place when the files cannot be linked (no hard links on the
        file system: a removal mid-read then fails the query, as it would without pins)."""
        for _ in range(PLAN_ATTEMPTS):
            state = self.state()
            sources = query_sources(state, self.settings.merger_dir, q)
            try:
                return state, pin_sources(sources, into)
            except FileNotFoundError as e:
                if self.state() is state:  # not a removal by a commit: a file of the committed state is missing
                    raise QueryFailedError(f"a file of the committed state is missing: {e.filename}") from e
                log.info("a query's file was removed as it was planned: planned again", extra={"path": e.filename})
            except OSError as e:
                if not self._read_in_place:
                    log.warning(
                        "query files are read in place: they cannot be linked",
                        extra={"path": str(into), "error": repr(e)},
                    )
                    self._read_in_place = True
                return state, sources
        raise QueryFailedError(f"the merged files changed under each of {PLAN_ATTEMPTS} plans of the query; retry")

    async def _chunks(self, request: Request, answer: AnswerFile) -> AsyncIterator[bytes]:
        """The answer's bytes as they are written, until the writer is done and all are read; the
        query stops when the client leaves."""
        loop = asyncio.get_running_loop()
        f = None
        try:
            while True:
                finished = answer.done.is_set()  # read before reading: then an empty read means the end
                if f is None:
                    try:
                        f = await loop.run_in_executor(self._readers, open, answer.path, "rb")
                    except FileNotFoundError:
                        if finished:
                            return
                        await asyncio.sleep(POLL_S)
                        continue
                chunk = await loop.run_in_executor(self._readers, f.read, CHUNK_SIZE)
                if chunk:
                    yield chunk
                elif finished:
                    if answer.error is not None:
                        log.warning("answer cut short by a failed query", extra={"path": str(answer.path)})
                    return
                elif await request.is_disconnected():
                    return
                else:
                    await asyncio.sleep(POLL_S)
        finally:
            if f is not None:
                f.close()
            answer.abandon()


FILTER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified (If-None-Match): the committed file and the query are unchanged."},
    422: {"description": "A filter that cannot be applied; `detail[0].loc` names the field."},
    503: {"description": "The merger is still loading its state, or too many queries wait (Retry-After)."},
}


def answer_headers(state: MergerState, q: RowQuery, fmt: Format) -> dict[str, str]:
    """An answer's headers. ETag: the committed prefix and the query, so an unchanged file answers
    If-None-Match with 304 without running the query again."""
    first = state.retained[0].seq  # (retention removed the segments before it: other rows)
    version = f"{state.merged_size}" if not first else f"{first}-{state.merged_size}"
    etag = f'"{state.generation}-{version}-{fmt}-{q.key()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Committed-Size": str(state.merged_size)}
    if fmt == "parquet":
        headers["Content-Disposition"] = 'attachment; filename="merged.parquet"'
    return headers


def add_get_and_head(router: APIRouter | FastAPI, path: str, endpoint: Callable[..., Any], **route: Any) -> None:
    """GET and HEAD of `path` as two operations of the OpenAPI document, each with its own id
    (get_/head_ and the path: one route with both methods would repeat one id)."""
    name = path.lstrip("/").replace(".", "_")
    for method in ("GET", "HEAD"):
        router.add_api_route(path, endpoint, methods=[method], operation_id=f"{method.lower()}_{name}", **route)


def query_sources(state: MergerState, merger_dir: Path, q: RowQuery) -> list[Source]:
    """The files a query reads with their committed rows: merged.csv, or the retained segments
    whose eventTime bounds may hold a match (the others are skipped whole), compacted ones from
    their Parquet copy."""
    if state.active.seq == 0:  # one file, never rolled over
        return [(state.active.path(merger_dir), state.rows_merged)]
    return [
        (merger_dir / (g.parquet or g.file), g.rows)  # (a compacted one's Parquet copy: filters read it directly)
        for g in state.retained
        if g.rows and might_match(q, g.event_time_us)
    ]
