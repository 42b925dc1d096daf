"""The filters of merged.csv and merged.parquet as the gateway documents them (declared once in
contract/query.py; the merger checks them and its 422 comes back as it is). The routes are in
gateway/routes/data.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from contract.query import RowFiltersAsSent
from gateway.models import ErrorBody

UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The merger gave a broken answer."},
    503: {"model": ErrorBody, "description": "The merger is unreachable."},
    504: {"model": ErrorBody, "description": "The merger did not answer in time."},
}
FILTER_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A filter the merger cannot apply; `detail[0].loc` names the field."},
}


def row_filters(filters: Annotated[RowFiltersAsSent, Query()]) -> None:  # type: ignore[valid-type]
    """Documents the filters in the gateway's OpenAPI (contract/query.py); the merger checks them."""
