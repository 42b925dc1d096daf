"""Pure ASGI middlewares: Host and cross-site checks (403/415), a request body size limit (413) and
request counting for /metrics."""

from __future__ import annotations

import orjson
from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.origin import cross_site_refusal, host_refusal, media_type_refusal


async def send_error(send: Send, status: int, error: str, detail: str) -> None:
    """An ErrorBody answer straight from a middleware (before any route runs)."""
    body = orjson.dumps({"detail": detail, "error": error, "component": None})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_413(send: Send, limit: int) -> None:
    await send_error(send, 413, "payload_too_large", f"request body larger than {limit} bytes")


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests: anything else (lifespan, websocket) goes straight
    to the app; a subclass's `handle` sees the HTTP ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BrowserGuard(HttpMiddleware):
    """Refuses requests for a Host the gateway is not (DNS rebinding: 403 host_not_allowed),
    state-changing requests from another site (CSRF: 403 cross_site) and state-changing requests
    whose body is not JSON (415 unsupported_media_type). Probe routes skip the Host check so
    container healthchecks and orchestrators can use any name. Rules in services/gateway/origin.py."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: list[str],
        trusted_origins: list[str],
        host_check_exempt: frozenset[str] = frozenset({"/healthz", "/readyz"}),
    ) -> None:
        super().__init__(app)
        self.allowed_hosts = allowed_hosts
        self.trusted_origins = trusted_origins
        self.host_check_exempt = host_check_exempt

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        method = scope["method"]
        host = headers.get("host")
        if scope["path"] not in self.host_check_exempt and (why := host_refusal(host, self.allowed_hosts)):
            await send_error(send, 403, "host_not_allowed", why)
            return
        if why := cross_site_refusal(
            method, host, headers.get("origin"), headers.get("sec-fetch-site"), self.trusted_origins
        ):
            await send_error(send, 403, "cross_site", why)
            return
        if why := media_type_refusal(method, headers.get("content-type")):
            await send_error(send, 415, "unsupported_media_type", why)
            return
        await self.app(scope, receive, send)


class BodySizeLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await _send_413(send, self.max_bytes)
                return
        # Bodies here are small control documents: read them up front (bounded), then replay.
        chunks: list[Message] = []
        total = 0
        while True:
            msg = await receive()
            chunks.append(msg)
            if msg["type"] != "http.request":
                break
            total += len(msg.get("body", b""))
            if total > self.max_bytes:
                await _send_413(send, self.max_bytes)
                return
            if not msg.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


class RequestMetrics(HttpMiddleware):
    """Counts answered requests by method, route template (not the raw path) and status."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        super().__init__(app)
        self.counter = counter

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.counter.labels(scope["method"], template, str(status)).inc()
