"""API-key checks: X-API-Key or Authorization: Bearer, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from gateway.errors import Unauthorized


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
