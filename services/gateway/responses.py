"""Error answers documented in the OpenAPI, shared by the routers (services/gateway/routes/)."""

from __future__ import annotations

from typing import Any

from services.gateway.models import ErrorBody


def upstream_errors(upstream: str, *, download: bool = False) -> dict[int | str, dict[str, Any]]:
    """The answers of a route forwarded to `upstream` that failed on the way (errors.py's
    UpstreamError kinds); a download also gets 503 when every download place is taken."""
    unreachable = f"The {upstream} is unreachable" + (" (or every download place is taken)." if download else ".")
    return {
        502: {"model": ErrorBody, "description": f"The {upstream} gave a broken answer."},
        503: {"model": ErrorBody, "description": unreachable},
        504: {"model": ErrorBody, "description": f"The {upstream} did not answer in time."},
    }


GENERATOR_ERRORS = upstream_errors("generator")
MERGER_ERRORS = upstream_errors("merger")
DOWNLOAD_ERRORS = upstream_errors("merger", download=True)

#: Answers of services/gateway/middleware.py's BrowserGuard and BodySizeLimit, possible on every route.
GUARD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Refused: a Host the gateway is not, or a cross-site request."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    415: {"model": ErrorBody, "description": "A state-changing request whose body is not JSON."},
}
AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key (when one is configured)."}
}
