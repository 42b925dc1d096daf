"""Error answers documented in the OpenAPI, shared by the routers (services/gateway/routes/)."""

from __future__ import annotations

from typing import Any

from services.gateway.models import ErrorBody

UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The upstream service gave a broken answer."},
    503: {"model": ErrorBody, "description": "The upstream service is unreachable (or, for downloads, busy)."},
    504: {"model": ErrorBody, "description": "The upstream service did not answer in time."},
}
#: Answers of services/gateway/middleware.py's BrowserGuard and BodySizeLimit, possible on every route.
GUARD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Refused: a Host the gateway is not, or a cross-site request."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    415: {"model": ErrorBody, "description": "A state-changing request whose body is not JSON."},
}
AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key (when one is configured)."}
}
