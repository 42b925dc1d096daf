"""contract.query: one declaration of the merged.csv / merged.parquet filters, checked by the merger
and documented (as sent) by the gateway; both OpenAPI documents show each parameter once, with
its description."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI

from contract.query import MAX_LIMIT, RowFilters, RowFiltersAsSent
from gateway.query import row_filters
from services.merger.query_api import row_query

PARAMS = ("since", "until", "deviceId", "customerId", "status", "columns", "limit")


def test_the_merger_parses_what_the_gateway_forwards_as_sent() -> None:
    sent = {"since": "2026-11-28T03:30:00Z", "deviceId": ["D001", "D002"], "limit": "10"}
    assert RowFiltersAsSent.model_validate(sent).model_dump(by_alias=True, exclude_none=True) == sent
    parsed = RowFilters.model_validate(sent)
    assert (parsed.since is not None, parsed.device_ids, parsed.limit) == (True, ["D001", "D002"], 10)
    with pytest.raises(ValueError, match="limit"):
        RowFilters.model_validate({"limit": str(MAX_LIMIT + 1)})


def _parameters(dependency: Any) -> dict[str, dict]:
    """The query parameters a route with `dependency` shows in its OpenAPI, each name once."""
    app = FastAPI()
    app.add_api_route("/merged.csv", lambda: None, dependencies=[Depends(dependency)])

    params = app.openapi()["paths"]["/merged.csv"]["get"]["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names)), names
    return {p["name"]: p for p in params}


@pytest.mark.parametrize("dependency", [row_query, row_filters], ids=["merger", "gateway"])
def test_each_parameter_is_documented_once_with_its_description(dependency: Any) -> None:
    params = _parameters(dependency)
    assert tuple(params) == PARAMS
    for name, p in params.items():
        field = next(f for n, f in RowFilters.model_fields.items() if (f.alias or n) == name)
        assert p["description"] == field.description and p["in"] == "query" and not p["required"]
