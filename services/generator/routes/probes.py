"""Liveness, readiness (connected to Kafka) and the Prometheus metrics: open to anyone."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from contract.api import Alive
from services.generator.deps import EngineDep, Registry, Settings

router = APIRouter(tags=["probes"])


class Readiness(BaseModel):
    """GET /readyz (read by healthchecks, by status code)."""

    ready: bool
    kafka: str
    topic: str
    error: str | None = None


@router.get("/healthz", response_model=Alive)
async def healthz() -> Alive:
    return Alive(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not connected to Kafka (yet)."}},
)
async def readyz(response: Response, engine: EngineDep, settings: Settings) -> Readiness:
    ready = engine.producer is not None and engine.connected
    response.status_code = 200 if ready else 503
    return Readiness(
        ready=ready,
        kafka=settings.kafka_bootstrap_servers,
        topic=settings.topic,
        error=None if ready else engine.last_error or "connecting to Kafka",
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus(registry: Registry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
