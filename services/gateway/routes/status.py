"""The pipeline's status (/status, built by services/gateway/status_snapshot.py with the rules of
services/gateway/health.py), the gateway's own liveness and readiness, and its Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contract.api import Alive
from services.gateway.auth import Read
from services.gateway.deps import ControlClient, Metrics, Settings, Status
from services.gateway.models import PipelineStatus, Readiness
from services.gateway.responses import AUTH_ERROR

router = APIRouter(tags=["status"])


@router.get(
    "/status",
    response_model=PipelineStatus,
    summary="The whole pipeline in one document",
    responses={503: {"model": PipelineStatus, "description": "overall is down."}, **AUTH_ERROR},
    dependencies=[Read],
    # Spark's age_s, stale and pid_alive are left out, not null, while there is no progress file.
    response_model_exclude_unset=True,
)
async def status(response: Response, service: Status) -> PipelineStatus:
    """Kafka, generator, Spark and merger probed concurrently within `status_timeout_s`;
    HTTP 200 when overall is ok or degraded, 503 when down (see services/gateway/health.py for the rules)."""
    doc = await service.snapshot()
    response.status_code = 503 if doc.overall == "down" else 200
    return doc


@router.get("/healthz", response_model=Alive, summary="The gateway process is alive")
async def healthz() -> Alive:
    return Alive(status="alive")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The gateway can reach the generator and the merger",
    responses={503: {"model": Readiness, "description": "An upstream service is unreachable."}},
)
async def readyz(response: Response, settings: Settings, client: ControlClient) -> Readiness:
    async def reachable(url: str) -> bool:
        try:
            return (await client.get(url, timeout=settings.status_timeout_s)).status_code == 200
        except httpx.HTTPError:
            return False

    gen_ok, merger_ok = await asyncio.gather(
        reachable(f"{settings.generator_base()}/healthz"), reachable(f"{settings.merger_base()}/healthz")
    )
    response.status_code = 200 if gen_ok and merger_ok else 503
    return Readiness(ready=gen_ok and merger_ok, generator=gen_ok, merger=merger_ok)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Read],
    responses={200: {"content": {"text/plain": {}}}, **AUTH_ERROR},
)
async def prometheus(metrics: Metrics, service: Status) -> Response:
    with metrics.status_build.time():
        doc = await service.snapshot()
    metrics.observe_status(doc)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
