"""The gateway's OpenAPI asks for the API key exactly where its settings make it checked: nowhere
without GATEWAY_API_KEY, on the writes with it, on every read too with GATEWAY_PROTECT_READS."""

from __future__ import annotations

import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

WRITES = {"POST /generator/start", "POST /generator/stop", "PUT /generator/rate"}
READS = {"GET /status", "GET /merged.csv", "HEAD /merged.csv", "GET /devices", "GET /metrics", "GET /report"}
OPEN = {"GET /healthz", "GET /readyz", "GET /"}


def _secured(settings: GatewaySettings) -> tuple[set[str], set[str]]:
    doc = create_app(settings).openapi()
    ops = {f"{m.upper()} {p}": o for p, methods in doc["paths"].items() for m, o in methods.items()}
    return {k for k, o in ops.items() if o.get("security")}, set(ops)


@pytest.mark.parametrize(
    ("settings", "secured"),
    [
        ({}, set()),
        ({"api_key": "k"}, WRITES),
        ({"api_key": "k", "protect_reads": True}, WRITES | READS),
        ({"protect_reads": True}, set()),  # no key: nothing to check
    ],
)
def test_security_is_documented_where_it_is_checked(settings: dict, secured: set[str]) -> None:
    got, every = _secured(GatewaySettings(**settings))
    assert secured <= got and not (got & OPEN)
    if not settings.get("protect_reads") or "api_key" not in settings:
        assert not (got & READS)
    if "api_key" not in settings:
        assert not got
    assert (READS | WRITES).issubset(every)
