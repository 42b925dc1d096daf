"""What the routes need, as FastAPI dependencies: the settings, the metrics, the two upstream
clients, the download pool and the /status service. The lifespan (services/gateway/app.py) puts them on
`app.state`; these read them from there, so no route holds state of its own."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from services.gateway.downloads import DownloadPool
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings
from services.gateway.status_snapshot import StatusService


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def get_metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


def get_control_client(request: Request) -> httpx.AsyncClient:
    """The control client: generator commands, status probes, the tail (never behind downloads)."""
    return request.app.state.client


def get_download_pool(request: Request) -> DownloadPool:
    return request.app.state.download_pool


def get_status_service(request: Request) -> StatusService:
    return request.app.state.status


Settings = Annotated[GatewaySettings, Depends(get_settings)]
Metrics = Annotated[GatewayMetrics, Depends(get_metrics)]
ControlClient = Annotated[httpx.AsyncClient, Depends(get_control_client)]
Downloads = Annotated[DownloadPool, Depends(get_download_pool)]
Status = Annotated[StatusService, Depends(get_status_service)]
