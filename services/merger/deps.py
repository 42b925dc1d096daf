"""What the routes need, as FastAPI dependencies: the settings, the watcher (the merge and its
committed state), the device tracker, the query service and the metrics registry. The lifespan
(app.py) puts them on `app.state`; these read them from there, so no route holds state of its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from services.merger.device_tracker import DeviceTracker
from services.merger.errors import NotReadyError
from services.merger.query_api import QueryService
from services.merger.settings import MergerSettings
from services.merger.state import MergerState
from services.merger.watcher import Watcher


def committed_state(watcher: Watcher) -> MergerState:
    """The state last committed, or NotReadyError (503) before it is loaded or when it cannot be."""
    state = watcher.state
    if state is None:
        raise NotReadyError(watcher.fatal_error or "the merger is still loading its state")
    return state


def get_settings(request: Request) -> MergerSettings:
    return request.app.state.settings


def get_watcher(request: Request) -> Watcher:
    return request.app.state.watcher


def get_tracker(request: Request) -> DeviceTracker:
    return request.app.state.tracker


def get_queries(request: Request) -> QueryService:
    return request.app.state.queries


def get_registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


def get_started_at(request: Request) -> float:
    """When the app started (epoch s): merged.csv's Last-Modified before the first merge."""
    return request.app.state.started_at


Settings = Annotated[MergerSettings, Depends(get_settings)]
WatcherDep = Annotated[Watcher, Depends(get_watcher)]
Tracker = Annotated[DeviceTracker, Depends(get_tracker)]
Queries = Annotated[QueryService, Depends(get_queries)]
Registry = Annotated[CollectorRegistry, Depends(get_registry)]
StartedAt = Annotated[float, Depends(get_started_at)]
