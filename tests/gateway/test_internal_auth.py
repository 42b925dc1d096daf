"""The gateway authenticates to the real generator and merger with the stack's internal secret
(DEVICESTREAM_INTERNAL_SECRET): called directly without it, their control and data routes answer
401; through the gateway the same calls work; probes and status documents stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from contract.internal import HEADER, secret_matches
from tests.gateway.conftest import Stack, make_stack

SECRET = "internal-secret-for-tests"


@pytest.fixture
def real(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    s = make_stack(tmp_path, kafka, DEVICESTREAM_INTERNAL_SECRET=SECRET)
    try:
        s.start("merger", real=True, DEVICESTREAM_INTERNAL_SECRET=SECRET)
        s.start("generator", real=True, DEVICESTREAM_INTERNAL_SECRET=SECRET)
        s.start("gateway")
        yield s
    finally:
        s.stop_all()


def test_services_refuse_calls_without_the_secret(real: Stack) -> None:
    gen, merger = real.generator_url, real.merger_url
    for headers in ({}, {HEADER: "wrong"}, {"authorization": f"Bearer {SECRET}"}):
        r = httpx.post(f"{gen}/generator/start", json={"rate": 1}, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert "X-Internal-Token" in r.json()["detail"]
        assert httpx.put(f"{gen}/generator/rate", json={"rate": 1}, headers=headers).status_code == 401
        assert httpx.post(f"{gen}/generator/stop", headers=headers).status_code == 401
        assert httpx.get(f"{merger}/merged.csv", headers=headers).status_code == 401
        assert httpx.head(f"{merger}/merged.csv", headers=headers).status_code == 401
    # open: probes and the read-only status documents and metrics
    for url in (f"{gen}/healthz", f"{gen}/readyz", f"{gen}/generator/status", f"{gen}/metrics"):
        assert httpx.get(url).status_code == 200, url
    for url in (f"{merger}/healthz", f"{merger}/readyz", f"{merger}/merger/status", f"{merger}/metrics"):
        assert httpx.get(url).status_code == 200, url
    assert httpx.get(f"{gen}/generator/status").json()["state"] == "idle"


def test_the_gateway_carries_the_secret(real: Stack) -> None:
    u = real.url
    r = httpx.post(f"{u}/generator/start", json={"rate": 5, "seed": 1})
    assert r.status_code == 202, r.text
    assert httpx.put(f"{u}/generator/rate", json={"rate": 10}).status_code == 200
    r = httpx.post(f"{u}/generator/stop", timeout=60)
    assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
    # the merger answers the gateway (nothing merged yet: 404, not 401)
    assert httpx.get(f"{u}/merged.csv").status_code == 404
    # and the caller with the secret directly
    assert httpx.get(f"{real.merger_url}/merged.csv", headers={HEADER: SECRET}).status_code == 404
    # /status probes both with the secret (no Spark here, so overall itself is not the point)
    components = real.status().json()["components"]
    assert components["generator"]["reachable"] and components["merger"]["reachable"], components


def test_a_gateway_without_the_secret_is_refused(tmp_path: Path, kafka: object) -> None:
    s = make_stack(tmp_path, kafka)  # the gateway has no secret, the generator has one
    try:
        s.start("generator", real=True, DEVICESTREAM_INTERNAL_SECRET=SECRET)
        s.start("gateway")
        r = httpx.post(f"{s.url}/generator/start", json={"rate": 1})
        assert r.status_code == 401, r.text
    finally:
        s.stop_all()


def test_secret_compare() -> None:
    assert secret_matches(SecretStr("s"), "s")
    assert not secret_matches(SecretStr("s"), None) and not secret_matches(SecretStr("s"), "S")
    assert not secret_matches(SecretStr("s"), "é")
