"""The gateway's errors; app.py maps them to HTTP responses (and nothing else does)."""

from __future__ import annotations


class GatewayError(Exception):
    status_code = 500
    error = "internal"
    retry_after_s: int | None = None

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.component = component

    def body(self) -> dict[str, object]:
        return {"detail": self.message, "error": self.error, "component": self.component}


class UpstreamError(GatewayError):
    """An upstream service (generator, merger) could not answer properly."""


class UpstreamUnreachable(UpstreamError):
    status_code = 503
    error = "unreachable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error = "timeout"


class UpstreamBadResponse(UpstreamError):
    status_code = 502
    error = "bad_gateway"


class Unauthorized(GatewayError):
    status_code = 401
    error = "unauthorized"


class DownloadsBusy(GatewayError):
    """As many downloads run as the gateway serves at once."""

    status_code = 503
    error = "busy"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, component="gateway")
        self.retry_after_s = retry_after_s


class ReportError(GatewayError):
    """GET /report could not be rendered (the renderer failed or ran past its deadline)."""

    status_code = 500
    error = "report_failed"


class ReportUnavailable(ReportError):
    """This installation has no report renderer (the services image leaves out devicestream/ and matplotlib)."""

    status_code = 503
    error = "report_unavailable"


class RunNotFound(ReportError):
    status_code = 404
    error = "not_found"
