"""Querying the merged data through the gateway: merged.csv's filters documented here (declared in
contract/query.py; the merger checks them and its 422 comes back as it is), merged.parquet streamed
from the merger, and the device figures (/devices) forwarded. The query string is forwarded exactly
as sent, so repeated parameters (deviceId=D001&deviceId=D002) keep their meaning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from contract.devices import DevicesResponse
from contract.query import RowFiltersAsSent
from gateway.models import ErrorBody
from gateway.settings import GatewaySettings
from gateway.upstream import answer_as_is, call_json, stream_merged

UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The merger gave a broken answer."},
    503: {"model": ErrorBody, "description": "The merger is unreachable."},
    504: {"model": ErrorBody, "description": "The merger did not answer in time."},
}
FILTER_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A filter the merger cannot apply; `detail[0].loc` names the field."},
}


def row_filters(filters: Annotated[RowFiltersAsSent, Query()]) -> None:  # type: ignore[valid-type]
    """Documents the filters in the gateway's OpenAPI (contract/query.py); the merger checks them."""


def with_query(url: str, request: Request) -> str:
    query = request.url.query
    return f"{url}?{query}" if query else url


async def relay_download(settings: GatewaySettings, url: str, request: Request) -> Response:
    """Stream `url` (with the request's query string) from the merger: status, validators, body;
    through the download pool, within the download places and the send timeout like merged.csv."""
    slot = request.app.state.download_slots.acquire()  # 503 + Retry-After when all are taken
    return await stream_merged(
        request.app.state.downloads,
        request.method,
        with_query(url, request),
        request.headers,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.stream_read_timeout_s,
        send_timeout_s=settings.download_send_timeout_s,
        slot=slot,
    )


def query_router(settings: GatewaySettings, client_of: Callable[[Request], httpx.AsyncClient]) -> APIRouter:
    router = APIRouter()
    parquet_url = f"{settings.merger_base()}/merged.parquet"

    async def merged_parquet(request: Request) -> Response:
        """The committed rows that match the filters as one Parquet file (typed columns; eventTime a
        UTC timestamp), streamed from the merger."""
        return await relay_download(settings, parquet_url, request)

    for method in ("GET", "HEAD"):
        router.add_api_route(
            "/merged.parquet",
            merged_parquet,
            methods=[method],
            operation_id=f"{method.lower()}_merged_parquet",
            tags=["output"],
            summary="The merged rows as Parquet, with merged.csv's filters",
            response_class=Response,
            responses={
                200: {"content": {"application/vnd.apache.parquet": {}}, "description": "One Parquet file."},
                304: {"description": "Not modified (If-None-Match)."},
                **FILTER_ERRORS,
                **UPSTREAM_ERRORS,
            },
            dependencies=[Depends(row_filters)],
        )
    devices_url = f"{settings.merger_base()}/devices"

    async def devices_json(request: Request, url: str) -> Any:
        """The merger's answer, validated against the contract on success; its errors as they are."""
        resp = await call_json(client_of(request), "merger", "GET", url, body=None, timeout_s=settings.status_timeout_s)
        if not 200 <= resp.status_code < 300:
            return answer_as_is(resp)
        return DevicesResponse.model_validate_json(resp.content)

    @router.get(
        "/devices",
        response_model=DevicesResponse,
        tags=["devices"],
        summary="Every device's figures (whole run and recent window), from the merger",
        responses=UPSTREAM_ERRORS,
    )
    async def devices(request: Request) -> Any:
        return await devices_json(request, devices_url)

    @router.get(
        "/devices/{deviceId}",
        response_model=DevicesResponse,
        tags=["devices"],
        summary="One device's figures",
        responses={404: {"description": "No merged row has this deviceId."}, **UPSTREAM_ERRORS},
    )
    async def device(request: Request, deviceId: Annotated[str, Path(examples=["D001"])]) -> Any:
        return await devices_json(request, f"{devices_url}/{quote(deviceId, safe='')}")

    return router
