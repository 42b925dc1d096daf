"""Liveness and readiness (state loaded, folders writable): open to anyone."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from pydantic import BaseModel

from contract.api import Alive
from services.merger.deps import Settings, WatcherDep

router = APIRouter()


class Readiness(BaseModel):
    """GET /readyz (read by healthchecks, by status code)."""

    ready: bool
    problems: list[str]
    #: What keeps it from merging but needs no restart (a full disk: retried by itself).
    notes: list[str] = []


@router.get("/healthz", response_model=Alive)
async def healthz() -> Alive:
    """The process is alive."""
    return Alive(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
)
async def readyz(response: Response, watcher: WatcherDep, settings: Settings) -> Readiness:
    """State loaded and merged.csv recovered; input and output folders writable. A full disk
    keeps it ready (it serves merged.csv and resumes by itself; a restart frees no space): it
    is in `notes`, and in /merger/status `write_blocked`."""
    problems: list[str] = []
    blocked = watcher.write_blocked
    notes = [] if blocked is None else [f"merging paused: {blocked.condition} in {blocked.folder} (retrying)"]
    if watcher.fatal_error:
        problems.append(watcher.fatal_error)
    elif not watcher.ready:
        problems.append("state not loaded yet" + (f" ({notes[0]})" if notes else ""))
    for folder in (settings.rows_dir, settings.merger_dir):
        if not os.access(folder, os.W_OK | os.X_OK):
            problems.append(f"folder not writable: {folder}")
    response.status_code = 200 if not problems else 503
    return Readiness(ready=not problems, problems=problems, notes=notes)
