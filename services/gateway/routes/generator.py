"""Generator commands and status, forwarded as sent and checked against the shared contract
(contract/api.py) on the way back."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ValidationError

from contract.api import Problem
from services.gateway.auth import Read, Write
from services.gateway.deps import ControlClient, Settings
from services.gateway.errors import UpstreamBadResponse
from services.gateway.models import GeneratorStatus, RateRequest, Run, RunConflict, StartRequest
from services.gateway.responses import AUTH_ERROR, GENERATOR_ERRORS
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import answer_as_is, call_json, command_headers

router = APIRouter(tags=["generator"])

COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The generator refused the command."},
    **AUTH_ERROR,
    **GENERATOR_ERRORS,
}


async def to_generator(
    request: Request,
    response: Response,
    settings: GatewaySettings,
    client: httpx.AsyncClient,
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
        client,
        "generator",
        method,
        f"{settings.generator_base()}{path}",
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
            f"generator answered {method} {path} with a document that breaks its contract ({where}: {first['msg']})",
            component="generator",
        ) from None
    response.status_code = resp.status_code
    response.headers.update(command_headers(resp))
    return doc


class ToGenerator:
    """The route's call forwarded to the generator: to_generator with this request's request,
    response, settings and control client (FastAPI builds one per request)."""

    def __init__(self, request: Request, response: Response, settings: Settings, client: ControlClient) -> None:
        self.request = request
        self.response = response
        self.settings = settings
        self.client = client

    async def __call__(self, method: str, path: str, model: type[BaseModel], **options: Any) -> Any:
        return await to_generator(
            self.request, self.response, self.settings, self.client, method, path, model, **options
        )


ToGeneratorCall = Annotated[ToGenerator, Depends()]


@router.post(
    "/generator/start",
    status_code=202,
    response_model=Run,
    summary="Start a generator run",
    responses={409: {"model": RunConflict, "description": "A run is already active."}, **COMMAND_ERRORS},
    dependencies=[Write],
)
async def generator_start(body: StartRequest, forward: ToGeneratorCall) -> Any:
    """Validated with the generator's own model, forwarded as sent; the generator checks the
    maximum rate (422 naming `rate`)."""
    return await forward("POST", "/generator/start", Run, with_body=True)


@router.post(
    "/generator/stop",
    response_model=GeneratorStatus,
    summary="Stop the active run (flushes in-flight events, returns the final counts)",
    responses=COMMAND_ERRORS,
    dependencies=[Write],
)
async def generator_stop(forward: ToGeneratorCall) -> Any:
    return await forward("POST", "/generator/stop", GeneratorStatus)


@router.put(
    "/generator/rate",
    response_model=Run,
    summary="Change the rate of the active run",
    responses={409: {"model": RunConflict, "description": "No active run."}, **COMMAND_ERRORS},
    dependencies=[Write],
)
async def generator_rate(body: RateRequest, forward: ToGeneratorCall) -> Any:
    return await forward("PUT", "/generator/rate", Run, with_body=True)


@router.get("/generator/status", response_model=GeneratorStatus, responses=COMMAND_ERRORS, dependencies=[Read])
async def generator_status(forward: ToGeneratorCall) -> Any:
    return await forward("GET", "/generator/status", GeneratorStatus, timeout_s=forward.settings.status_timeout_s)
