"""GET /report?run=ID: a run's report as one self-contained HTML page (charts inline).

The renderer is the runtime's `devicestream report` (devicestream/report/), which reads the run's
files in the data folder (ledger, time series, merged.csv, rejects, progress.json). The gateway does
not import it: it runs it as a child process (`python -m devicestream report --html-only`), which
also keeps matplotlib's CPU time off the gateway's event loop. Where the renderer is not installed
(the services container image has neither devicestream/ nor matplotlib), the answer is 503 saying
so; `devicestream report` on the host makes the same report from the same data folder."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from contract.ledger import LedgerError, ledger_path
from services.gateway.auth import Read
from services.gateway.deps import Settings
from services.gateway.errors import ReportError, ReportUnavailable, RunNotFound
from services.gateway.responses import AUTH_ERROR
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["report"])

RunId = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9A-Fa-f_-]{1,64}$",
        description="The generator run (its id, as /generator/status shows it); the last run without it.",
    ),
]


def _renderer_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("devicestream", "matplotlib"))


@router.get(
    "/report",
    response_class=HTMLResponse,
    summary="A run's report (self-contained HTML)",
    responses={404: {"description": "No such run."}, 503: {"description": "No renderer here."}, **AUTH_ERROR},
    dependencies=[Read],
)
async def report(request: Request, settings: Settings, run: RunId = None) -> HTMLResponse:
    """What was asked, what came out, with charts: the same page `devicestream report` writes."""
    runs = settings.layout.generator_runs
    if not await asyncio.to_thread(_has_ledger, runs, run):  # no child process for a run that is not there
        raise RunNotFound(f"no run {run}: no ledger in {runs}" if run else f"no generator run yet in {runs}")
    if not _renderer_installed():
        raise ReportUnavailable(
            "this gateway has no report renderer (devicestream and matplotlib are not installed here); "
            "run `devicestream report` where the data folder is",
            component="gateway",
        )
    async with request.app.state.report_slots:  # renders at once: bounded (lifespan)
        return await _render(settings, run)


async def _render(settings: GatewaySettings, run: str | None) -> HTMLResponse:
    with tempfile.TemporaryDirectory(prefix="report-") as out:
        args = [sys.executable, "-m", "devicestream", "report", "--html-only", "--out", out]
        args += ["--run", run] if run else []
        env = os.environ | {"DEVICESTREAM_DATA_DIR": str(settings.data_dir), "MPLBACKEND": "Agg"}
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), settings.report_timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ReportError(
                f"the report took longer than {settings.report_timeout_s:g} s", component="gateway"
            ) from None
        message = (stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        if proc.returncode == 2:
            raise RunNotFound(message.removeprefix("devicestream report: ") or "no such run", component="gateway")
        if proc.returncode != 0:
            log.warning("report failed", extra={"run": run or "last", "code": proc.returncode, "error": message})
            raise ReportError(f"the report could not be made: {message}", component="gateway")
        page = await asyncio.to_thread(_read_page, Path(out))
        return HTMLResponse(page, headers={"cache-control": "no-cache"})


def _has_ledger(runs: Path, run: str | None) -> bool:
    if run is None:
        return any(runs.glob("*.jsonl"))
    try:
        return ledger_path(runs, run).is_file()
    except LedgerError:
        return False


def _read_page(out: Path) -> str:
    html = next(out.glob("*.html"), None)
    if html is None:
        raise ReportError("the report wrote no HTML", component="gateway")
    return html.read_text(encoding="utf-8")
