"""The gateway authenticates to the real generator and merger with the stack's internal secret
(DEVICESTREAM_INTERNAL_SECRET): called directly without it, their control and data routes answer
401; through the gateway the same calls work; probes and status documents stay open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from contract.csv import ROW_HEADER
from contract.internal import ENV_NAME, HEADER, secret_matches
from devicestream.processes import free_ports
from devicestream.settings import LauncherSettings
from devicestream.specs import child_env
from tests.documents import generator_status, status_of
from tests.gateway.conftest import Stack, make_stack, start_stack
from tests.helpers import start_up, stop_up, wait_up

SECRET = "internal-secret-for-tests"
#: The generator's and the merger's settings: both require the secret.
SERVICES_SECRET = {name: {"DEVICESTREAM_INTERNAL_SECRET": SECRET} for name in ("merger", "generator")}


@pytest.fixture
def real(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    s = make_stack(tmp_path, kafka, DEVICESTREAM_INTERNAL_SECRET=SECRET)
    s.component_env = SERVICES_SECRET
    yield from start_stack(s, "merger", "generator", "gateway")


@pytest.mark.integration
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
    assert generator_status(gen).state == "idle"


@pytest.mark.integration
def test_the_gateway_carries_the_secret(real: Stack) -> None:
    u = real.url
    r = httpx.post(f"{u}/generator/start", json={"rate": 5, "seed": 1})
    assert r.status_code == 202, r.text
    assert httpx.put(f"{u}/generator/rate", json={"rate": 10}).status_code == 200
    r = httpx.post(f"{u}/generator/stop", timeout=60)
    assert r.status_code == 200 and status_of(r).state == "stopped", r.text
    # the merger answers the gateway (nothing merged yet: the header line alone, not 401)
    got = httpx.get(f"{u}/merged.csv")
    assert got.status_code == 200 and got.text == ROW_HEADER + "\n", (got.status_code, got.text[:200])
    # and the caller with the secret directly
    assert httpx.get(f"{real.merger_url}/merged.csv", headers={HEADER: SECRET}).status_code == 200
    # /status probes both with the secret (no Spark here, so overall itself is not the point)
    components = real.pipeline().components
    assert components.generator.reachable and components.merger.reachable, components


@pytest.mark.integration
def test_a_gateway_without_the_secret_is_refused(tmp_path: Path, kafka: object) -> None:
    with make_stack(tmp_path, kafka) as s:  # the gateway has no secret, the generator and merger have one
        s.component_env = SERVICES_SECRET
        s.start_all("generator", "gateway")
        # a setup error, not the caller's: 502 naming the setting (a 401 would blame the API key)
        r = httpx.post(f"{s.url}/generator/start", json={"rate": 1})
        assert r.status_code == 502, r.text
        assert r.json()["component"] == "generator" and "DEVICESTREAM_INTERNAL_SECRET" in r.json()["detail"]
        s.start("merger")
        for path in ("/merged.csv", "/merged/tail"):
            r = httpx.get(f"{s.url}{path}")
            assert r.status_code == 502 and "DEVICESTREAM_INTERNAL_SECRET" in r.json()["detail"], (path, r.text)


def test_secret_compare() -> None:
    assert secret_matches(SecretStr("s"), "s")
    assert not secret_matches(SecretStr("s"), None) and not secret_matches(SecretStr("s"), "S")
    assert not secret_matches(SecretStr("s"), "é")


def test_the_launcher_makes_a_secret_per_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    settings = LauncherSettings()
    a, b = child_env(settings, "127.0.0.1:9092")[ENV_NAME], child_env(settings, "127.0.0.1:9092")[ENV_NAME]
    assert a != b and len(a) >= 32
    monkeypatch.setenv(ENV_NAME, "chosen-by-the-user")
    assert child_env(settings, "127.0.0.1:9092")[ENV_NAME] == "chosen-by-the-user"


@pytest.mark.integration
@pytest.mark.integration
def test_devicestream_up_wires_the_secret(tmp_path: Path) -> None:
    """`devicestream up` (broker, merger, generator, gateway; no Spark): the gateway drives the
    generator, a direct call without the secret is refused."""
    kport, cport, gen, mer, gw = free_ports(5)
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if k != ENV_NAME},
        "DEVICESTREAM_DATA_DIR": str(data),
        "DEVICESTREAM_KAFKA_PORT": str(kport),
        "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(cport),
        "DEVICESTREAM_COMPONENTS": "kafka,merger,generator,gateway",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "GENERATOR_PORT": str(gen),
        "MERGER_PORT": str(mer),
        "GATEWAY_PORT": str(gw),
    }
    out_log = tmp_path / "up.log"
    logs = [out_log, *(data / "logs" / f"{n}.log" for n in ("gateway", "generator", "merger"))]
    launcher = start_up(env, out_log, base={})  # env is the whole environment: without the secret
    try:
        wait_up(launcher, out_log, 180, logs=logs)
        direct = httpx.post(f"http://127.0.0.1:{gen}/generator/start", json={"rate": 1})
        assert direct.status_code == 401, direct.text
        r = httpx.post(f"http://127.0.0.1:{gw}/generator/start", json={"rate": 1, "count": 3}, timeout=10)
        assert r.status_code == 202, r.text
        got = httpx.get(f"http://127.0.0.1:{gw}/merged.csv")  # reached: nothing merged is the header alone
        assert got.status_code == 200 and got.text == ROW_HEADER + "\n", (got.status_code, got.text[:200])
    finally:
        stop_up(launcher, env, data)
