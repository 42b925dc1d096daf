"""One model per route: the gateway and the generator validate with the same contract/api.py
models, and the gateway checks the generator's answers against them (a broken one is a 502, not
a document passed on unchecked)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from contract.api import GeneratorStatus, RateRequest, Run, StartAtRate, StartRequest
from services.gateway import models as gateway_models
from services.generator.routes import runs as generator_routes


def test_one_start_model() -> None:
    assert gateway_models.StartRequest is StartRequest is generator_routes.StartRequest
    assert gateway_models.RateRequest is RateRequest is generator_routes.RateRequest
    start = TypeAdapter(StartRequest)
    assert start.validate_python({"rate": 1}).invalid_ratio == 0.0
    for bad in ({"rate": "5"}, {"rate": 1, "seed": 1.5}, {"rate": 1, "x": 1}, {"rate": float("nan")}):
        with pytest.raises(ValidationError):
            start.validate_python(bad)
    # no maximum here: GENERATOR_MAX_RATE is the generator's setting, checked by it alone
    assert "maximum" not in StartAtRate.model_json_schema()["properties"]["rate"]


def test_answers_refuse_fields_they_do_not_name() -> None:
    """The generator builds its answers as these models: an unknown (misspelt) field is an error
    where it is read, never a document passed on with it."""
    with pytest.raises(ValidationError):
        GeneratorStatus.model_validate({"state": "stopped", "sent": 3, "undelivered": 2})
    with pytest.raises(ValidationError):
        Run.model_validate({"id": "r", "state": "bogus", "params": {"rate": 1}, "started_at": 0})
    with pytest.raises(ValidationError):
        Run.model_validate({"id": "r", "state": "running", "params": {"rate": 1, "rtae": 2}, "started_at": 0})
