"""One model per route: the gateway and the generator validate with the same contract/api.py
models, and the gateway checks the generator's answers against them (a broken one is a 502, not
a document passed on unchecked)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.api import GeneratorStatus, RateRequest, Run, StartRequest
from gateway import models as gateway_models
from services.generator import app as generator_app


def test_one_start_model() -> None:
    assert gateway_models.StartRequest is StartRequest is generator_app.StartRequest
    assert gateway_models.RateRequest is RateRequest is generator_app.RateRequest
    assert StartRequest(rate=1).invalid_ratio == 0.0
    for bad in ({"rate": "5"}, {"rate": 1, "seed": 1.5}, {"rate": 1, "x": 1}, {"rate": float("nan")}):
        with pytest.raises(ValidationError):
            StartRequest.model_validate(bad)
    # no maximum here: GENERATOR_MAX_RATE is the generator's setting, checked by it alone
    assert "maximum" not in StartRequest.model_json_schema()["properties"]["rate"]


def test_answers_refuse_undeclared_fields_but_a_runs_params_carry_its_options() -> None:
    with pytest.raises(ValidationError, match="undelivered"):
        GeneratorStatus.model_validate({"state": "stopped", "sent": 3, "undelivered": 2})
    run = {"id": "r", "state": "running", "params": {"rate": 1, "profile": {"kind": "constant"}}, "started_at": 0}
    assert GeneratorStatus.model_validate({"state": "running", "run": run}).run.params.model_dump()["profile"]
    with pytest.raises(ValidationError):
        Run.model_validate({"id": "r", "state": "bogus", "params": {"rate": 1}, "started_at": 0})
