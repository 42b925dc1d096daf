"""Request validation and the API's answers without Kafka, through the real app (ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.generator.app import create_app
from services.generator.settings import GeneratorSettings

STATUS_FIELDS = {
    "state",
    "run",
    "sent",
    "acknowledged",
    "invalid",
    "delivery_errors",
    "rate_1s",
    "rate_10s",
    "offset_first",
    "offset_last",
    "last_error",
    "topic",
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No broker: KAFKA_BOOTSTRAP_SERVERS empty, so the app stays "connecting".
    settings = GeneratorSettings(data_dir=tmp_path, kafka_bootstrap_servers="", topic="t-api", max_rate=1000)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gen") as c:
            yield c


def _names_field(resp: httpx.Response, field: str) -> bool:
    return any(field in [str(x) for x in err.get("loc", [])] for err in resp.json()["detail"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": 1001}, "rate"),  # over GENERATOR_MAX_RATE
        ({"rate": "100"}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": None}, "rate"),
        ({}, "rate"),
        ({"rate": 10, "count": 0}, "count"),
        ({"rate": 10, "count": 2.5}, "count"),
        ({"rate": 10, "count": "5"}, "count"),
        ({"rate": 10, "duration_s": 0}, "duration_s"),
        ({"rate": 10, "duration_s": -1}, "duration_s"),
        ({"rate": 10, "seed": "x"}, "seed"),
        ({"rate": 10, "invalid_ratio": 1.5}, "invalid_ratio"),
        ({"rate": 10, "invalid_ratio": -0.1}, "invalid_ratio"),
        ({"rate": 10, "bogus": 1}, "bogus"),
    ],
)
async def test_start_rejects_bad_input_naming_the_field(client: httpx.AsyncClient, body: dict, field: str) -> None:
    resp = await client.post("/generator/start", json=body)
    assert resp.status_code == 422, resp.text
    assert _names_field(resp, field), resp.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"rate": NaN}', "rate"),
        (b'{"rate": Infinity}', "rate"),
        (b'{"rate": 1e999}', "rate"),
        (b'{"rate": 10, "duration_s": NaN}', "duration_s"),
        (b"not json", "body"),
        (b'{"rate": ', "body"),
        (b"[1, 2]", "body"),
        (b"", "body"),
    ],
)
async def test_start_rejects_bad_json(client: httpx.AsyncClient, raw: bytes, field: str) -> None:
    resp = await client.post("/generator/start", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert _names_field(resp, field), resp.text


@pytest.mark.parametrize("body", [{"rate": 0}, {"rate": 2000}, {"rate": "1"}, {}, {"rate": 5, "x": 1}])
async def test_rate_change_validation(client: httpx.AsyncClient, body: dict) -> None:
    resp = await client.put("/generator/rate", json=body)
    assert resp.status_code == 422, resp.text


async def test_valid_requests_without_kafka(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]
    # a valid start while Kafka is not reachable: 503 with the reason, never a 500
    resp = await client.post("/generator/start", json={"rate": 0.2})
    assert resp.status_code == 503
    assert "Kafka" in resp.json()["detail"]
    # no run to change
    resp = await client.put("/generator/rate", json={"rate": 5})
    assert resp.status_code == 409
    assert "no active run" in resp.json()["detail"]
    # stop without a run is harmless
    resp = await client.post("/generator/stop")
    assert resp.status_code == 200
    status = (await client.get("/generator/status")).json()
    assert set(status) >= STATUS_FIELDS
    assert status["state"] == "idle" and status["run"] is None and status["topic"] == "t-api"
    assert "KAFKA_BOOTSTRAP_SERVERS" in status["last_error"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "generator_events_sent_total" in metrics.text
    assert "generator_send_latency_seconds_bucket" in metrics.text
    assert (await client.get("/openapi.json")).status_code == 200


async def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    s = GeneratorSettings(data_dir=tmp_path, kafka_bootstrap_servers="")
    a, b = create_app(s), create_app(s)  # would raise "Duplicated timeseries" with a shared registry
    assert a is not b
