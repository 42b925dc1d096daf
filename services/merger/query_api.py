"""HTTP edge of the filtered reads: the query parameters (one dependency shared by merged.csv and
merged.parquet) and the answer (computed into a temp file by the streaming engine, then streamed)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CollectorRegistry, Histogram

from contract.query import RowFilters
from services.merger.download import etag_matches
from services.merger.errors import QueryFailedError
from services.merger.query import AnswerFile, Format, RowQuery, build_query, tmp_dir
from services.merger.settings import MergerSettings
from services.merger.state import MergerState

log = logging.getLogger(__name__)

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
PARQUET_MEDIA_TYPE: Final = "application/vnd.apache.parquet"
#: Queries computed at once (each uses the polars thread pool); more wait their turn.
MAX_CONCURRENT_QUERIES: Final = 2


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


class QueryService:
    """Answers a RowQuery from the committed prefix of merged.csv."""

    def __init__(
        self, settings: MergerSettings, state: Callable[[], MergerState], registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.state = state  # the current committed state (raises NotReadyError before it is loaded)
        self.tmp = tmp_dir(settings.merger_dir)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_QUERIES)
        registry = registry if registry is not None else CollectorRegistry()  # never the global one
        self.duration = Histogram(
            "merger_query_duration_seconds",
            "Time to compute a filtered merged.csv / merged.parquet answer (written while it streams).",
            ["format"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )

    def answer(self, request: Request, q: RowQuery, fmt: Format) -> Response:
        """The rows of `q`, computed in a worker thread into a temp file that is streamed as it grows.
        ETag: the committed prefix and the query, so an unchanged file answers If-None-Match with
        304 without running the query again."""
        state = self.state()
        etag = f'"{state.generation}-{state.committed_size}-{fmt}-{q.key()}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Committed-Size": str(state.committed_size)}
        if fmt == "parquet":
            headers["Content-Disposition"] = 'attachment; filename="merged.parquet"'
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        media_type = PARQUET_MEDIA_TYPE if fmt == "parquet" else CSV_MEDIA_TYPE
        if request.method == "HEAD":  # the length is not known before the answer is complete
            return Response(status_code=200, headers=headers, media_type=media_type)
        self.tmp.mkdir(parents=True, exist_ok=True)
        answer = AnswerFile(self.tmp / f"{uuid.uuid4().hex}.{fmt}")
        rows = state.rows_merged

        def work() -> None:
            with self._slots, self.duration.labels(fmt).time():
                answer.write(self.settings.merged_csv, rows, q, fmt)

        threading.Thread(target=work, name="merger-query", daemon=True).start()
        # The status line goes out with the first bytes: a query that fails before writing any
        # (I/O error...) still gets a proper error instead of an empty 200.
        if not answer.wait_started():
            raise QueryFailedError(f"the query could not be answered: {answer.error!r}")
        # Streamed while it is computed (chunked, no Content-Length): the first bytes leave at once.
        return StreamingResponse(answer.chunks(), headers=headers, media_type=media_type)


FILTER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified (If-None-Match): the committed file and the query are unchanged."},
    422: {"description": "A filter that cannot be applied; `detail[0].loc` names the field."},
    503: {"description": "The merger is still loading its state."},
}


def query_router(service: QueryService) -> APIRouter:
    router = APIRouter(tags=["output"])

    def merged_parquet(request: Request, q: RowQueryParam) -> Response:
        """The committed rows that match the filters, as one Parquet file (readable by polars, pandas,
        pyarrow, DuckDB). Computed with polars' streaming engine: memory stays bounded."""
        return service.answer(request, q, "parquet")

    for method in ("GET", "HEAD"):
        router.add_api_route(
            "/merged.parquet",
            merged_parquet,
            methods=[method],
            operation_id=f"{method.lower()}_merged_parquet",
            response_class=StreamingResponse,
            summary="The merged rows as Parquet, with the same filters as merged.csv",
            responses={
                200: {
                    "content": {PARQUET_MEDIA_TYPE: {}},
                    "description": "Typed columns: eventOffset int64, deviceIndex and temperature int32, eventTime "
                    "a UTC timestamp (microseconds); zstd-compressed. Zero rows is a valid file with the schema.",
                },
                **FILTER_RESPONSES,
            },
        )
    return router
