"""Access control with a real gateway: API key on changing routes, reads open unless protected,
CORS off unless configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.gateway.auth import key_matches
from tests.documents import generator_status
from tests.gateway.conftest import Stack, make_stack, start_stack

KEY = "s3cret-key-for-tests"


def _gateway(tmp: Path, kafka: object, **env: str) -> Iterator[Stack]:
    yield from start_stack(make_stack(tmp, kafka, GATEWAY_API_KEY=KEY, **env), "generator", "gateway")


@pytest.fixture
def keyed(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    yield from _gateway(tmp_path, kafka)


@pytest.fixture
def locked(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    yield from _gateway(tmp_path, kafka, GATEWAY_PROTECT_READS="true", GATEWAY_CORS_ORIGINS="http://dash.example")


@pytest.mark.integration
def test_write_routes_need_the_key(keyed: Stack) -> None:
    u = keyed.url
    for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {KEY}"}):
        r = httpx.post(f"{u}/generator/start", json={"rate": 1}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json() == {"detail": "missing or invalid API key", "error": "unauthorized", "component": None}
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.put(f"{u}/generator/rate", json={"rate": 1}).status_code == 401
    assert httpx.post(f"{u}/generator/stop").status_code == 401
    # the generator saw none of it
    assert generator_status(keyed.generator_url).state == "idle"

    r = httpx.post(f"{u}/generator/start", json={"rate": 1}, headers={"x-api-key": KEY})
    assert r.status_code == 202
    r = httpx.put(f"{u}/generator/rate", json={"rate": 2}, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    # a wrong X-API-Key beside a right bearer token still passes (one valid credential is enough)
    r = httpx.post(f"{u}/generator/stop", headers={"x-api-key": "nope", "authorization": f"Bearer {KEY}"})
    assert r.status_code == 200

    # reads stay open
    assert httpx.get(f"{u}/generator/status").status_code == 200
    assert httpx.get(f"{u}/status").status_code in (200, 503)
    assert httpx.get(f"{u}/").status_code == 200
    # CORS is off by default: no allow-origin header
    r = httpx.get(f"{u}/healthz", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.integration
def test_protected_reads_and_cors(locked: Stack) -> None:
    u = locked.url
    for path in ("/status", "/generator/status", "/merged.csv", "/merged/tail", "/metrics"):
        assert httpx.get(f"{u}{path}").status_code == 401, path
    assert httpx.get(f"{u}/generator/status", headers={"x-api-key": KEY}).status_code == 200
    # always open: liveness and the dashboard page itself (it asks for the key)
    assert httpx.get(f"{u}/healthz").status_code == 200
    assert httpx.get(f"{u}/").status_code == 200
    r = httpx.options(
        f"{u}/generator/start",
        headers={"origin": "http://dash.example", "access-control-request-method": "POST"},
    )
    assert r.headers.get("access-control-allow-origin") == "http://dash.example"
    r = httpx.get(f"{u}/healthz", headers={"origin": "http://other.example"})
    assert "access-control-allow-origin" not in r.headers


def test_key_compare_checks_every_candidate() -> None:
    assert key_matches("k", ["k"]) and key_matches("k", ["x", "k"]) and key_matches("k", ["k", "x"])
    assert not key_matches("k", []) and not key_matches("k", ["K"]) and not key_matches("k", ["k "])
    assert not key_matches("k", ["é"])  # non-ASCII input compares (as bytes) instead of raising
