"""The gateway: one door to the pipeline (generator commands, merged.csv, pipeline status, the
dashboard). Upstream services are reached over HTTP through two httpx.AsyncClients owned by the
lifespan (control calls and downloads, apart); Kafka and the Spark progress file are read for
/status. No other service's code is imported."""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from contract.api import Alive, Problem
from contract.csv import ROW_COLUMNS
from contract.internal import outgoing_headers
from gateway import auth
from gateway.downloads import DownloadSlots
from gateway.errors import GatewayError, UpstreamBadResponse, UpstreamError
from gateway.metrics import GatewayMetrics
from gateway.middleware import BodySizeLimit, BrowserGuard, RequestMetrics
from gateway.models import (
    ErrorBody,
    GeneratorStatus,
    PipelineStatus,
    RateRequest,
    Readiness,
    Run,
    RunConflict,
    StartRequest,
    TailResponse,
)
from gateway.query import FILTER_ERRORS, query_router, relay_download, row_filters
from gateway.settings import GatewaySettings
from gateway.status import StatusService
from gateway.upstream import answer_as_is, call_json, command_headers, fetch_tail

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"

# Declared for the OpenAPI document (so /docs offers an "Authorize" button); checked in auth.py.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The gateway's API key.")
_bearer = HTTPBearer(auto_error=False, description="The gateway's API key as a bearer token.")

_UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The upstream service gave a broken answer."},
    503: {"model": ErrorBody, "description": "The upstream service is unreachable (or, for downloads, busy)."},
    504: {"model": ErrorBody, "description": "The upstream service did not answer in time."},
}
#: Answers of gateway/middleware.py's BrowserGuard and BodySizeLimit, possible on every route.
_GUARD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Refused: a Host the gateway is not, or a cross-site request."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    415: {"model": ErrorBody, "description": "A state-changing request whose body is not JSON."},
}
_AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key (when one is configured)."}
}


def _settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def _key(settings: GatewaySettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def require_write(
    request: Request,
    _k: Annotated[str | None, Security(_api_key_header)] = None,
    _b: Annotated[Any, Security(_bearer)] = None,
) -> None:
    auth.check(request, _key(_settings(request)))


def require_read(
    request: Request,
    _k: Annotated[str | None, Security(_api_key_header)] = None,
    _b: Annotated[Any, Security(_bearer)] = None,
) -> None:
    s = _settings(request)
    if s.protect_reads:
        auth.check(request, _key(s))


Write = Depends(require_write)
Read = Depends(require_read)


def _error_response(e: GatewayError) -> JSONResponse:
    headers = {"www-authenticate": 'Bearer realm="devicestream"'} if e.status_code == 401 else {}
    if e.retry_after_s is not None:
        headers["retry-after"] = str(e.retry_after_s)
    return JSONResponse(e.body(), status_code=e.status_code, headers=headers)


def create_app(settings: GatewaySettings) -> FastAPI:
    metrics = GatewayMetrics()

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
            app.state.client = client
            app.state.downloads = downloads
            app.state.download_slots = DownloadSlots(settings.max_downloads)
            app.state.status = status
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
                await status.aclose()

    app = FastAPI(
        title="devicestream gateway",
        version="0.1.0",
        description="One entry point to the devicestream pipeline: generator control, merged.csv, "
        "pipeline status and a live dashboard at `/`.",
        lifespan=lifespan,
        responses=_GUARD_ERRORS,
    )
    app.state.settings = settings
    app.state.metrics = metrics

    @app.exception_handler(GatewayError)
    async def on_gateway_error(request: Request, e: GatewayError) -> JSONResponse:
        if isinstance(e, UpstreamError):
            metrics.upstream_errors.labels(e.component or "-", e.error).inc()
        return _error_response(e)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=e, extra={"path": request.url.path})
        return JSONResponse(
            {"detail": "internal error in the gateway", "error": "internal", "component": "gateway"}, status_code=500
        )

    gen = settings.generator_base()
    merged_url = f"{settings.merger_base()}/merged.csv"

    def client_of(request: Request) -> httpx.AsyncClient:
        return request.app.state.client

    # ---- generator ---------------------------------------------------------------------------------

    async def to_generator(
        request: Request,
        response: Response,
        method: str,
        path: str,
        model: type[BaseModel],
        *,
        with_body: bool = False,
        timeout_s: float | None = None,
    ) -> Any:
        """Forward to the generator as sent. A success is validated against `model` (the shared
        contract; a broken document is a 502) and returned with the generator's status code; an
        error (409/422/503) comes back as the generator wrote it; its 401 (the internal secret
        refused) is a 502 naming the setting."""
        resp = await call_json(
            client_of(request),
            "generator",
            method,
            f"{gen}{path}",
            body=await request.body() if with_body else None,
            timeout_s=settings.command_timeout_s if timeout_s is None else timeout_s,
        )
        if not 200 <= resp.status_code < 300:
            return answer_as_is(resp)
        try:
            doc = model.model_validate_json(resp.content)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise UpstreamBadResponse(
                f"generator answered {method} {path} with a document that breaks its contract "
                f"({where}: {first['msg']})",
                component="generator",
            ) from None
        response.status_code = resp.status_code
        response.headers.update(command_headers(resp))
        return doc

    command_errors: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "The generator refused the command."},
        **_AUTH_ERROR,
        **_UPSTREAM_ERRORS,
    }

    @app.post(
        "/generator/start",
        status_code=202,
        response_model=Run,
        tags=["generator"],
        summary="Start a generator run",
        responses={409: {"model": RunConflict, "description": "A run is already active."}, **command_errors},
        dependencies=[Write],
    )
    async def generator_start(body: StartRequest, request: Request, response: Response) -> Any:
        """Validated with the generator's own model, forwarded as sent; the generator checks the
        maximum rate (422 naming `rate`)."""
        return await to_generator(request, response, "POST", "/generator/start", Run, with_body=True)

    @app.post(
        "/generator/stop",
        response_model=GeneratorStatus,
        tags=["generator"],
        summary="Stop the active run (flushes in-flight events, returns the final counts)",
        responses=command_errors,
        dependencies=[Write],
    )
    async def generator_stop(request: Request, response: Response) -> Any:
        return await to_generator(request, response, "POST", "/generator/stop", GeneratorStatus)

    @app.put(
        "/generator/rate",
        response_model=Run,
        tags=["generator"],
        summary="Change the rate of the active run",
        responses={409: {"model": RunConflict, "description": "No active run."}, **command_errors},
        dependencies=[Write],
    )
    async def generator_rate(body: RateRequest, request: Request, response: Response) -> Any:
        return await to_generator(request, response, "PUT", "/generator/rate", Run, with_body=True)

    @app.get(
        "/generator/status",
        response_model=GeneratorStatus,
        tags=["generator"],
        responses=command_errors,
        dependencies=[Read],
    )
    async def generator_status(request: Request, response: Response) -> Any:
        return await to_generator(
            request, response, "GET", "/generator/status", GeneratorStatus, timeout_s=settings.status_timeout_s
        )

    # ---- merged.csv ------------------------------------------------------------------------------

    merged_responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/csv": {}}, "description": "The whole file (the header alone before the first row)."},
        206: {"content": {"text/csv": {}}, "description": "The requested byte range."},
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)."},
        416: {"description": "Range not satisfiable."},
        **_AUTH_ERROR,
        **_UPSTREAM_ERRORS,
    }

    async def merged_csv(request: Request) -> Response:
        """Streamed from the merger chunk by chunk. Range, If-Range, If-None-Match and
        If-Modified-Since go to the merger; ETag, Last-Modified, Content-Length, Content-Range and
        Accept-Ranges come back, with its status code (200/206/304/416). Filters go along in the
        query string: the merger checks and applies them."""
        return await relay_download(settings, merged_url, request)

    for method in ("GET", "HEAD"):
        app.add_api_route(
            "/merged.csv",
            merged_csv,
            methods=[method],
            operation_id=f"{method.lower()}_merged_csv",
            tags=["output"],
            summary="The merged output" if method == "GET" else "Size, ETag and Last-Modified of the merged output",
            response_class=Response,
            responses={**merged_responses, **FILTER_ERRORS},
            dependencies=[Read, Depends(row_filters)],
        )

    @app.get(
        "/merged/tail",
        response_model=TailResponse,
        tags=["output"],
        summary="The last rows of merged.csv (one bounded Range request to the merger)",
        responses={**_AUTH_ERROR, **_UPSTREAM_ERRORS},
        dependencies=[Read],
    )
    async def merged_tail(request: Request, n: Annotated[int, Query(ge=1, le=1000)] = 20) -> TailResponse:
        n = min(n, settings.tail_max_rows)
        lines, size = await fetch_tail(
            client_of(request),
            merged_url,
            n=n,
            window_bytes=settings.tail_window_bytes,
            timeout_s=settings.status_timeout_s,
        )
        rows = [row for row in csv.reader(lines)]
        return TailResponse(columns=list(ROW_COLUMNS), rows=rows, file_size=size, available=size is not None)

    app.include_router(query_router(settings, client_of), dependencies=[Read])

    # ---- status, health, metrics -------------------------------------------------------------------

    @app.get(
        "/status",
        response_model=PipelineStatus,
        tags=["status"],
        summary="The whole pipeline in one document",
        responses={503: {"model": PipelineStatus, "description": "overall is down."}, **_AUTH_ERROR},
        dependencies=[Read],
    )
    async def status(request: Request, response: Response) -> PipelineStatus:
        """Kafka, generator, Spark and merger probed concurrently within `status_timeout_s`;
        HTTP 200 when overall is ok or degraded, 503 when down (see gateway/health.py for the rules)."""
        doc = await request.app.state.status.snapshot()
        response.status_code = 503 if doc["overall"] == "down" else 200
        return PipelineStatus.model_validate(doc)

    @app.get("/healthz", response_model=Alive, tags=["status"], summary="The gateway process is alive")
    async def healthz() -> Alive:
        return Alive(status="alive")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["status"],
        summary="The gateway can reach the generator and the merger",
        responses={503: {"model": Readiness, "description": "An upstream service is unreachable."}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        client = client_of(request)

        async def reachable(url: str) -> bool:
            try:
                return (await client.get(url, timeout=settings.status_timeout_s)).status_code == 200
            except httpx.HTTPError:
                return False

        gen_ok, merger_ok = await asyncio.gather(
            reachable(f"{gen}/healthz"), reachable(f"{settings.merger_base()}/healthz")
        )
        response.status_code = 200 if gen_ok and merger_ok else 503
        return Readiness(ready=gen_ok and merger_ok, generator=gen_ok, merger=merger_ok)

    @app.get(
        "/metrics",
        tags=["status"],
        response_class=Response,
        dependencies=[Read],
        responses={200: {"content": {"text/plain": {}}}, **_AUTH_ERROR},
    )
    async def prometheus(request: Request) -> Response:
        with metrics.status_build.time():
            doc = await request.app.state.status.snapshot()
        metrics.observe_status(doc)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ---- dashboard -------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

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
    app.add_middleware(BrowserGuard, allowed_hosts=settings.host_names(), trusted_origins=settings.cors_origins)
    app.add_middleware(RequestMetrics, counter=metrics.requests)
    return app
