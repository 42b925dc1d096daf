"""GET/HEAD /merged.parquet: the committed rows that match the filters (the gateway's only: app.py
guards it with the internal secret). The filtered merged.csv answer is the download's
(routes/download.py); both are computed by the QueryService (query_api.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.merger.deps import Queries
from services.merger.query_api import FILTER_RESPONSES, PARQUET_MEDIA_TYPE, RowQueryParam, add_get_and_head

router = APIRouter(tags=["output"])


async def merged_parquet(request: Request, q: RowQueryParam, queries: Queries) -> Response:
    """The committed rows that match the filters, as one Parquet file (readable by polars, pandas,
    pyarrow, DuckDB). Computed with polars' streaming engine: memory stays bounded."""
    return await queries.answer(request, q, "parquet")


add_get_and_head(
    router,
    "/merged.parquet",
    merged_parquet,
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
