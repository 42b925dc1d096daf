"""The filters of merged.csv and merged.parquet: one declaration for the merger (which checks and
applies them) and the gateway (which documents them and forwards the query string as sent, so the
merger's 422 comes back as it is and repeated parameters keep their meaning).

The merger takes `RowFilters` as its query-parameter model (FastAPI validates the types: a bad
time or limit is a 422 naming the field); the gateway takes `RowFiltersAsSent`, the same parameters
with the same descriptions, as plain strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model

from contract.csv import ROW_COLUMNS

#: Largest `limit` accepted (the merger's polars build counts rows in 32 bits).
MAX_LIMIT: Final = 2**32 - 1


class RowFilters(BaseModel):
    """Every filter is optional; unknown query parameters are ignored."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    since: datetime | None = Field(
        default=None,
        description="Rows with eventTime at or after this time (ISO-8601; without a zone: UTC).",
        examples=["2026-11-28T03:30:00Z"],
    )
    until: datetime | None = Field(
        default=None,
        description="Rows with eventTime before this time (ISO-8601).",
        examples=["2026-11-28T03:40:00Z"],
    )
    device_ids: list[str] | None = Field(
        default=None,
        alias="deviceId",
        description="Only these devices (repeat the parameter).",
        examples=[["D001"]],
    )
    customer_ids: list[str] | None = Field(
        default=None,
        alias="customerId",
        description="Only these customers (repeat the parameter).",
        examples=[["CI00107"]],
    )
    statuses: list[str] | None = Field(
        default=None,
        alias="status",
        description="Only these statuses (repeat the parameter; an empty value: rows without a status).",
        examples=[["ERROR"]],
    )
    columns: list[str] | None = Field(
        default=None,
        description=f"Only these columns, in this order (repeat or separate with commas); of {list(ROW_COLUMNS)}.",
        examples=[["eventTime,deviceId,temperature"]],
    )
    limit: int | None = Field(
        default=None, ge=0, le=MAX_LIMIT, description="At most this many rows (the first ones).", examples=[1000]
    )


def _as_sent(model: type[BaseModel]) -> type[BaseModel]:
    """`model`'s fields (names, aliases, descriptions) typed as the query string carries them:
    list fields as lists of strings, the others as strings; no checks."""
    fields: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        repeated = any(getattr(a, "__origin__", None) is list for a in get_args(f.annotation))
        kind: Any = list[str] | None if repeated else str | None
        examples = [e if repeated else str(e) for e in f.examples or ()]
        fields[name] = (kind, Field(default=None, alias=f.alias, description=f.description, examples=examples))
    return create_model(f"{model.__name__}AsSent", __config__=model.model_config, **fields)


#: RowFilters as the gateway documents and forwards them (strings; the merger checks them).
RowFiltersAsSent = _as_sent(RowFilters)
