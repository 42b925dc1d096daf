"""contract.query: one declaration of the merged.csv / merged.parquet filters, checked by the gateway
and the merger alike; both OpenAPI documents show each parameter once, with its description and
the type, format or pattern that decides what is taken."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from pydantic import ValidationError

from contract.csv import ROW_COLUMNS
from contract.query import COLUMNS_PATTERN, FIRST_INSTANT, LAST_INSTANT, MAX_LIMIT, RowFilters
from services.gateway.download_params import row_filters
from services.merger.query_api import row_query

PARAMS = ("since", "until", "deviceId", "customerId", "status", "columns", "limit")


def test_every_valid_value_is_taken() -> None:
    sent = {
        "since": "2026-11-28T03:30:00+01:00",
        "until": "2026-11-28T03:00:00",  # naive: UTC; before `since`: an empty range, not an error
        "deviceId": ["D001", "", " odd \r\n id "],
        "status": ["ERROR", "anything"],
        "columns": ["eventId, deviceId", "status"],
        "limit": "10",
    }
    f = RowFilters.model_validate(sent)
    assert f.since == datetime(2026, 11, 28, 2, 30, tzinfo=UTC) and f.until == datetime(2026, 11, 28, 3, tzinfo=UTC)
    assert (f.device_ids, f.statuses, f.columns, f.limit) == (sent["deviceId"], sent["status"], sent["columns"], 10)
    # beyond years 1-9999 in UTC: the first / last instant
    edge = RowFilters.model_validate({"since": "0001-01-01T00:00:00+01:00", "until": "9999-12-31T23:59:59-23:59"})
    assert (edge.since, edge.until) == (FIRST_INSTANT, LAST_INSTANT)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "0.5"}, "since"),  # a number is not a time (pydantic alone would read a timestamp)
        ({"until": "2026-11-28"}, "until"),  # a date alone is not a moment
        ({"until": "2024-01-01T12:99:00Z"}, "until"),
        ({"columns": ["eventId,nope"]}, "columns"),
        ({"columns": [""]}, "columns"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "-1"}, "limit"),
    ],
)
def test_what_the_schema_refuses_is_refused_naming_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        RowFilters.model_validate(params)
    assert e.value.errors()[0]["loc"][0] == field


def test_the_columns_pattern_is_the_row_columns() -> None:
    assert re.fullmatch(COLUMNS_PATTERN, " , ".join(ROW_COLUMNS))
    assert not re.fullmatch(COLUMNS_PATTERN, "eventId,,status")


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
    assert params["since"]["schema"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    assert params["limit"]["schema"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}
    assert params["columns"]["schema"]["anyOf"][0]["items"]["pattern"] == COLUMNS_PATTERN
