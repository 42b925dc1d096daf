"""The merged data: merged.csv and merged.parquet streamed from the merger (with the filters of
services/gateway/download_params.py, passed on in the query string), the last rows of merged.csv, and the device
figures (/devices) forwarded. The query string is forwarded exactly as sent, so repeated
parameters (deviceId=D001&deviceId=D002) keep their meaning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from contract.csv import ROW_COLUMNS
from contract.devices import DevicesPage, DevicesResponse
from services.gateway.auth import Read
from services.gateway.deps import ControlClient, Downloads, Settings
from services.gateway.download_params import FILTER_ERRORS, download_headers, row_filters
from services.gateway.downloads import DownloadPool, RelayResponse
from services.gateway.models import TailResponse
from services.gateway.responses import AUTH_ERROR, DOWNLOAD_ERRORS, MERGER_ERRORS
from services.gateway.settings import GatewaySettings
from services.gateway.tail import tail_rows
from services.gateway.upstream import answer_as_is, call_json, fetch_tail, stream_merged

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Read])
#: How often a download waiting for the merger's first bytes checks that its client is still there.
DISCONNECT_POLL_S = 0.1
#: The status logged for a request whose client left before the answer (nginx's "client closed").
CLIENT_GONE = 499

MERGED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The whole file (the header alone before the first row)."},
    206: {"content": {"text/csv": {}}, "description": "The requested byte range."},
    304: {"description": "Not modified (If-None-Match / If-Modified-Since)."},
    416: {"description": "Range not satisfiable."},
    **AUTH_ERROR,
    **DOWNLOAD_ERRORS,
}


def with_query(url: str, request: Request) -> str:
    query = request.url.query
    return f"{url}?{query}" if query else url


async def relay_download(settings: GatewaySettings, pool: DownloadPool, url: str, request: Request) -> Response:
    """Stream `url` (with the request's query string) from the merger: status, validators, body;
    through the download pool, within the download places and the send timeout. A client that
    leaves before the merger's first bytes (a filtered answer is computed first) cancels the
    request to the merger, which then stops the query and frees the place."""
    slot = pool.slots.acquire()  # 503 + Retry-After when all are taken
    relay = asyncio.ensure_future(
        stream_merged(
            pool.client,
            request.method,
            with_query(url, request),
            # Range, If-Range... are ASCII (RFC 9110); one that is not is ignored, as a bad Range is
            {k: v for k, v in request.headers.items() if v.isascii()},
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.stream_read_timeout_s,
            send_timeout_s=settings.download_send_timeout_s,
            slot=slot,
            upstream_headers=pool.upstream_headers,
        )
    )
    while True:
        await asyncio.wait({relay}, timeout=DISCONNECT_POLL_S)
        if relay.done():
            return relay.result()
        if await request.is_disconnected():
            break
    relay.cancel()
    try:
        started = await relay  # the merger may have answered meanwhile: close that answer
    except asyncio.CancelledError:
        pass
    else:
        if isinstance(started, RelayResponse):
            await started.on_close()
    log.info("download abandoned before its first bytes", extra={"path": request.url.path})
    return Response(status_code=CLIENT_GONE)


def add_download(
    path: str,
    endpoint: Callable[..., Awaitable[Response]],
    *,
    get_summary: str,
    head_summary: str,
    responses: dict[int | str, dict[str, Any]],
    headers: bool = False,
) -> None:
    """GET and HEAD of one download relayed from the merger, with the filters checked and
    documented (and with `headers`, the Range and validator headers documented)."""
    for method, summary in (("GET", get_summary), ("HEAD", head_summary)):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            operation_id=f"{method.lower()}_{path.lstrip('/').replace('.', '_')}",
            tags=["output"],
            summary=summary,
            response_class=Response,
            responses=responses,
            dependencies=[Depends(row_filters), *([Depends(download_headers)] if headers else [])],
        )


async def merged_csv(request: Request, settings: Settings, pool: Downloads) -> Response:
    """Streamed from the merger chunk by chunk. Range, If-Range, If-None-Match and
    If-Modified-Since go to the merger; ETag, Last-Modified, Content-Length, Content-Range and
    Accept-Ranges come back, with its status code (200/206/304/416). Filters go along in the
    query string: the merger checks and applies them."""
    return await relay_download(settings, pool, f"{settings.merger_base()}/merged.csv", request)


add_download(
    "/merged.csv",
    merged_csv,
    get_summary="The merged output",
    head_summary="Size, ETag and Last-Modified of the merged output",
    responses={**MERGED_RESPONSES, **FILTER_ERRORS},
    headers=True,
)


@router.get(
    "/merged/tail",
    response_model=TailResponse,
    tags=["output"],
    summary="The last rows of merged.csv (one bounded Range request to the merger)",
    responses={**AUTH_ERROR, **MERGER_ERRORS},
)
async def merged_tail(
    settings: Settings, client: ControlClient, n: Annotated[int, Query(ge=1, le=1000)] = 20
) -> TailResponse:
    window, size = await fetch_tail(
        client,
        f"{settings.merger_base()}/merged.csv",
        window_bytes=settings.tail_window_bytes,
        timeout_s=settings.status_timeout_s,
    )
    rows = tail_rows(window, min(n, settings.tail_max_rows))
    return TailResponse(columns=list(ROW_COLUMNS), rows=rows, file_size=size, available=size is not None)


async def merged_parquet(request: Request, settings: Settings, pool: Downloads) -> Response:
    """The committed rows that match the filters as one Parquet file (typed columns; eventTime a
    UTC timestamp), streamed from the merger."""
    return await relay_download(settings, pool, f"{settings.merger_base()}/merged.parquet", request)


PARQUET_SUMMARY = "The merged rows as Parquet, with merged.csv's filters"
add_download(
    "/merged.parquet",
    merged_parquet,
    get_summary=PARQUET_SUMMARY,
    head_summary=PARQUET_SUMMARY,
    responses={
        200: {"content": {"application/vnd.apache.parquet": {}}, "description": "One Parquet file."},
        304: {"description": "Not modified (If-None-Match)."},
        **FILTER_ERRORS,
        **DOWNLOAD_ERRORS,
    },
)


async def devices_json(settings: GatewaySettings, client: httpx.AsyncClient, path: str, query: str = "") -> Any:
    """The merger's answer, validated against the contract on success; its errors as they are."""
    url = f"{settings.merger_base()}/devices{path}{query}"
    resp = await call_json(client, "merger", "GET", url, body=None, timeout_s=settings.status_timeout_s)
    if not 200 <= resp.status_code < 300:
        return answer_as_is(resp)
    return DevicesResponse.model_validate_json(resp.content)


@router.get(
    "/devices",
    response_model=DevicesResponse,
    tags=["devices"],
    summary="One page of the devices' figures (whole run and recent window), from the merger",
    responses=MERGER_ERRORS,
)
async def devices(settings: Settings, client: ControlClient, page: Annotated[DevicesPage, Query()]) -> Any:
    """Sorted by deviceId; pass `next_after` as `after` for the next page."""
    params = {"limit": str(page.limit), **({"after": page.after} if page.after is not None else {})}
    return await devices_json(settings, client, "", f"?{urlencode(params)}")


@router.get(
    "/devices/{deviceId}",
    response_model=DevicesResponse,
    tags=["devices"],
    summary="One device's figures",
    responses={404: {"description": "No merged row has this deviceId."}, **MERGER_ERRORS},
)
async def device(settings: Settings, client: ControlClient, deviceId: Annotated[str, Path(examples=["D001"])]) -> Any:
    return await devices_json(settings, client, f"/{quote(deviceId, safe='')}")
