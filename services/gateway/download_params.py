"""The downloads' parameters: the filters of merged.csv and merged.parquet, and merged.csv's request
headers, as the gateway checks and documents them (declared once in contract/query.py, the merger's
own model: a bad filter is the gateway's 422 naming the field, the same the merger would give). The
query string goes to the merger as sent. The routes are in services/gateway/routes/data.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Query

from contract.query import DownloadHeaders, RowFilters

FILTER_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A filter that is not valid; `detail[0].loc` names the field."},
}


def row_filters(filters: Annotated[RowFilters, Query()]) -> None:
    """Checks the filters (contract/query.py) before the merger is asked; the query string is then
    forwarded as sent (repeated parameters keep their meaning)."""


def download_headers(headers: Annotated[DownloadHeaders, Header()]) -> None:
    """Declares merged.csv's request headers (contract/query.py); they go to the merger as sent."""
