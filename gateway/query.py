"""Querying the merged data through the gateway: merged.csv's and merged.parquet's filters
documented here (the merger checks them; its 422 comes back as it is). The routes are in
gateway/routes/data.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from gateway.models import ErrorBody

UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The merger gave a broken answer."},
    503: {"model": ErrorBody, "description": "The merger is unreachable."},
    504: {"model": ErrorBody, "description": "The merger did not answer in time."},
}
FILTER_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A filter the merger cannot apply; `detail[0].loc` names the field."},
}


def row_filters(
    since: Annotated[
        str | None,
        Query(description="eventTime at or after (ISO-8601; no zone: UTC).", examples=["2026-11-28T03:30:00Z"]),
    ] = None,
    until: Annotated[
        str | None, Query(description="eventTime before (ISO-8601).", examples=["2026-11-28T03:40:00Z"])
    ] = None,
    device_ids: Annotated[
        list[str] | None, Query(alias="deviceId", description="Repeat for several devices.", examples=[["D001"]])
    ] = None,
    customer_ids: Annotated[
        list[str] | None, Query(alias="customerId", description="Repeat for several customers.")
    ] = None,
    statuses: Annotated[
        list[str] | None,
        Query(alias="status", description="Repeat for several; empty: rows without a status.", examples=[["ERROR"]]),
    ] = None,
    columns: Annotated[
        list[str] | None,
        Query(description="Columns to keep, in order (repeat or comma-separated).", examples=[["eventTime,deviceId"]]),
    ] = None,
    limit: Annotated[str | None, Query(description="At most this many rows.", examples=["1000"])] = None,
) -> None:
    """Documents the filters in the gateway's OpenAPI; the merger validates them."""
