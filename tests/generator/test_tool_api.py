"""Profiles, fleet and faults in the API without Kafka: 422 naming the field for what is impossible,
the OpenAPI schema carries the models with examples."""

from __future__ import annotations

import httpx
import pytest

from tests.generator.test_api import _names_field, client  # noqa: F401 -- the fixture

RAMP = {"kind": "ramp", "from_rate": 10, "to_rate": 100, "over_s": 10}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"profile": {"kind": "ramp", "from_rate": 1, "to_rate": 10, "over_s": 0}}, "over_s"),
        ({"profile": {"kind": "constant", "rate": -1}}, "rate"),
        ({"profile": {"kind": "steps", "steps": [{"rate": -1, "duration_s": 1}]}}, "rate"),
        ({"profile": {"kind": "sine", "mean": 10, "amplitude": 1, "period_s": -2}}, "period_s"),
        ({"profile": {"kind": "warp", "rate": 1}}, "profile"),
        ({"profile": {"kind": "constant", "rate": 0}}, "rate"),  # never produces an event
        ({"profile": {"kind": "ramp", "from_rate": 1, "to_rate": 5000, "over_s": 3}}, "to_rate"),  # over max_rate
        ({"profile": {"kind": "steps", "steps": [{"rate": 1, "duration_s": 1}, {"rate": 2000, "duration_s": 1}]}}, "1"),
        ({"rate": 10, "profile": RAMP}, "profile"),
        ({"rate": 10, "faults": {"late_ratio": 1.5}}, "late_ratio"),
        ({"rate": 10, "faults": {"resend_ratio": -0.1}}, "resend_ratio"),
        ({"rate": 10, "faults": {"max_lateness_s": -1}}, "max_lateness_s"),
        ({"rate": 10, "fleet": {"silent_probability": 2}}, "silent_probability"),
        ({"rate": 10, "fleet": {"status": {"success_to_error": 0.7, "success_to_standby": 0.6}}}, "status"),
        ({"rate": 10, "fleet": {"customers": 0}}, "customers"),
        ({"rate": 10, "first_index": -1}, "first_index"),
    ],
)
async def test_impossible_requests_name_the_field(client: httpx.AsyncClient, body: dict, field: str) -> None:  # noqa: F811
    r = await client.post("/generator/start", json=body)
    assert r.status_code == 422, r.text
    assert _names_field(r, field), r.json()


async def test_rate_request_takes_a_profile(client: httpx.AsyncClient) -> None:  # noqa: F811
    r = await client.put(
        "/generator/rate", json={"profile": {"kind": "ramp", "from_rate": 1, "to_rate": 2, "over_s": 0}}
    )
    assert r.status_code == 422 and _names_field(r, "over_s"), r.text
    r = await client.put("/generator/rate", json={"profile": RAMP})
    assert r.status_code == 409, r.text  # valid, but there is no run


async def test_valid_tool_request_reaches_the_generator(client: httpx.AsyncClient) -> None:  # noqa: F811
    body = {"profile": RAMP, "seed": 3, "fleet": {"customers": 2}, "faults": {"late_ratio": 0.1}}
    r = await client.post("/generator/start", json=body)
    assert r.status_code == 503, r.text  # no Kafka here: valid input, the service says why it cannot


async def test_openapi_has_examples(client: httpx.AsyncClient) -> None:  # noqa: F811
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("StartAtRate", "StartWithProfile", "RampProfile", "SineProfile", "FleetOptions", "FaultOptions"):
        assert schema[name].get("examples"), name


async def test_rate_and_profile_exclude_each_other_in_the_schema(client: httpx.AsyncClient) -> None:  # noqa: F811
    """The start and rate bodies are a oneOf of two closed models, one requiring `rate`, the
    other `profile`: a client (or schemathesis) reading the OpenAPI knows not to send both."""
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for path, method, (with_rate, with_profile) in (
        ("/generator/start", "post", ("StartAtRate", "StartWithProfile")),
        ("/generator/rate", "put", ("SetRate", "SetProfile")),
    ):
        body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        refs = [one["$ref"].rsplit("/", 1)[-1] for one in body["oneOf"]]
        assert refs == [with_rate, with_profile], body
        assert "rate" in schemas[with_rate]["required"] and "profile" not in schemas[with_rate]["properties"]
        assert "profile" in schemas[with_profile]["required"] and "rate" not in schemas[with_profile]["properties"]
        assert schemas[with_rate]["additionalProperties"] is schemas[with_profile]["additionalProperties"] is False
        both = await client.request(method, path, json={"rate": 5, "profile": RAMP})
        assert both.status_code == 422, both.text
        assert [(e["loc"], e["msg"]) for e in both.json()["detail"]] == [
            (["body", "profile"], "Give `rate` or `profile`, not both")
        ]
