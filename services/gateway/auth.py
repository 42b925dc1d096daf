"""API-key checks: X-API-Key or Authorization: Bearer, compared in constant time; `Read` and
`Write`, the dependencies that apply them to routes."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.requests import Request

from services.gateway.deps import Settings
from services.gateway.errors import Unauthorized
from services.gateway.settings import GatewaySettings

# Declared for the OpenAPI document (so /docs offers an "Authorize" button); checked below.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The gateway's API key.")
_bearer = HTTPBearer(auto_error=False, description="The gateway's API key as a bearer token.")


def presented_keys(request: Request) -> list[str]:
    keys = []
    if (x := request.headers.get("x-api-key")) is not None:
        keys.append(x)
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token:
        keys.append(token.strip())
    return keys


def key_matches(expected: str, presented: list[str]) -> bool:
    """True when any presented key equals `expected`. Every candidate is compared (no early exit),
    each with hmac.compare_digest, so timing says nothing about which part was wrong."""
    want = expected.encode()
    ok = False
    for k in presented:
        ok |= hmac.compare_digest(want, k.encode())
    return ok


def check(request: Request, expected: str | None) -> None:
    """Raise Unauthorized unless `expected` is None or the request carries it."""
    if expected is None:
        return
    if not key_matches(expected, presented_keys(request)):
        raise Unauthorized("missing or invalid API key")


def _key(settings: GatewaySettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def _requires_key(for_reads: bool) -> Callable[..., None]:
    """A dependency checking the API key: always for writes, for reads when `protect_reads`."""

    def require(
        request: Request,
        settings: Settings,
        _k: Annotated[str | None, Security(_api_key_header)] = None,
        _b: Annotated[Any, Security(_bearer)] = None,
    ) -> None:
        if not for_reads or settings.protect_reads:
            check(request, _key(settings))

    return require


_require_for_writes = _requires_key(for_reads=False)
_require_for_reads = _requires_key(for_reads=True)
Write = Depends(_require_for_writes)
Read = Depends(_require_for_reads)


def _calls(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _calls(d, call) for d in dependant.dependencies)


def document_checks_as_configured(app: FastAPI, settings: GatewaySettings, routers: Iterable[APIRouter]) -> None:
    """The OpenAPI document asks for the API key on the routes that check it with these settings
    only: writes when GATEWAY_API_KEY is set, reads when GATEWAY_PROTECT_READS is too. (FastAPI
    declares the security of every route that has the dependency, checked or not.) `routers` are
    those included in `app` without a prefix."""
    key = _key(settings) is not None
    open_reads, open_writes = not (key and settings.protect_reads), not key
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for route in (r for router in routers for r in router.routes):
            if not isinstance(route, APIRoute):
                continue
            reads = _calls(route.dependant, _require_for_reads)
            writes = _calls(route.dependant, _require_for_writes)
            if (reads and open_reads) or (writes and open_writes):
                for method in route.methods:
                    schema["paths"].get(route.path_format, {}).get(method.lower(), {}).pop("security", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
