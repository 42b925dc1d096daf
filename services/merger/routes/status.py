"""GET /merger/status (the merge's progress, aggregated by the gateway) and the Prometheus metrics:
read-only, open to anyone."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contract.merger_status import MergerStatus
from services.merger.deps import Registry, WatcherDep

router = APIRouter()


@router.get("/merger/status", response_model=MergerStatus)
async def status(watcher: WatcherDep) -> MergerStatus:
    """Progress of the merge (the gateway aggregates this document)."""
    return watcher.status()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def prometheus_metrics(registry: Registry) -> Response:
    """Prometheus metrics of this merger."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
