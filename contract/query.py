"""The filters of merged.csv and merged.parquet: one declaration for the merger (which applies them)
and the gateway (which checks them with the same model and forwards the query string as sent, so
repeated parameters keep their meaning).

Everything a filter accepts is in its OpenAPI schema, and everything else is a 422 naming the field
from this model (FastAPI's validation), never a check by hand further on:
- `since`, `until`: RFC 3339 date-times (`format: date-time`); a time without a zone is also taken,
  as UTC. A time beyond years 1-9999 once in UTC stands for the first or last instant (it filters as
  "from the beginning" / "to the end"); `since` after `until` is an empty range (no rows).
- `deviceId`, `customerId`, `status`: any text (the pipeline keeps any string value; a filter for one
  that no row has matches nothing); an empty value matches rows without one.
- `columns`: the row columns' names, comma-separated (spaces allowed around them) or repeated.
- `limit`: an integer 0..2^32-1."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from contract.csv import ROW_COLUMNS

#: Largest `limit` accepted (the merger's polars build counts rows in 32 bits).
MAX_LIMIT: Final = 2**32 - 1
#: The first and last instants a filter time stands for (what lies beyond them in UTC is clamped).
FIRST_INSTANT: Final = datetime.min.replace(tzinfo=UTC)
LAST_INSTANT: Final = datetime.max.replace(tzinfo=UTC)
#: A date and a time (what pydantic's datetime parses besides numbers and bare dates, refused here:
#: `0.5` or `2026-11-28` are not a moment in ISO-8601 terms the schema declares).
_DATE_TIME_START: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", re.ASCII)
_COLUMN: Final = "(?:" + "|".join(ROW_COLUMNS) + ")"
#: One `columns` value: names separated by commas, spaces allowed around them.
COLUMNS_PATTERN: Final = rf"^ *{_COLUMN} *(?:, *{_COLUMN} *)*$"


def _date_time_text(value: object) -> object:
    """A query parameter's text must be a date and a time (pydantic parses the rest of it)."""
    if isinstance(value, str) and not _DATE_TIME_START.match(value):
        raise ValueError("Input should be an ISO-8601 date and time, e.g. 2026-11-28T03:30:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """UTC; naive means UTC; beyond years 1-9999 in UTC, the first or last instant."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, 9999-12-31T23:00-02:00 in 10000
        return FIRST_INSTANT if value.year == 1 else LAST_INSTANT


#: A filter time: RFC 3339 in the schema, read as UTC.
FilterTime = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc)]
ColumnList = Annotated[str, StringConstraints(pattern=COLUMNS_PATTERN)]


class RowFilters(BaseModel):
    """Every filter is optional; unknown query parameters are ignored."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    since: FilterTime | None = Field(
        default=None,
        description="Rows with eventTime at or after this time (RFC 3339; without a zone: UTC).",
        examples=["2026-11-28T03:30:00Z"],
    )
    until: FilterTime | None = Field(
        default=None,
        description="Rows with eventTime before this time (RFC 3339; without a zone: UTC). Before `since`: no rows.",
        examples=["2026-11-28T03:40:00Z"],
    )
    device_ids: list[str] | None = Field(
        default=None,
        alias="deviceId",
        description="Only these devices (repeat the parameter; an empty value: rows without a deviceId).",
        examples=[["D001"]],
    )
    customer_ids: list[str] | None = Field(
        default=None,
        alias="customerId",
        description="Only these customers (repeat the parameter; an empty value: rows without a customerId).",
        examples=[["CI00107"]],
    )
    statuses: list[str] | None = Field(
        default=None,
        alias="status",
        description="Only these statuses (repeat the parameter; an empty value: rows without a status).",
        examples=[["ERROR"]],
    )
    columns: list[ColumnList] | None = Field(
        default=None,
        description=f"Only these columns, in this order (repeat or separate with commas); of {list(ROW_COLUMNS)}.",
        examples=[["eventTime,deviceId,temperature"]],
    )
    limit: int | None = Field(
        default=None, ge=0, le=MAX_LIMIT, description="At most this many rows (the first ones).", examples=[1000]
    )


class DownloadHeaders(BaseModel):
    """The request headers of merged.csv, declared for the OpenAPI documents of the merger and the
    gateway (which forwards them). Any value is taken: a Range that is not one satisfiable byte
    range of bytes=first-last or bytes=-suffix is ignored (the whole file, as RFC 9110 lets a server
    do), one past the end is a 416; filters leave Range out."""

    range: str | None = Field(
        default=None,
        description="One byte range (bytes=0-99, bytes=100-, bytes=-500); answered with 206, or 416 past the end.",
        examples=["bytes=0-1023"],
    )
    if_range: str | None = Field(
        default=None, description="The ETag or Last-Modified of the copy the Range continues (else: the whole file)."
    )
    if_none_match: str | None = Field(
        default=None, description="ETags of the copy held (or *): 304 when it is still the committed file."
    )
