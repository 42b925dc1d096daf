"""GET /devices and /devices/{deviceId}: per-device figures the merger keeps as rows are merged
(written by the merger, forwarded by the gateway, drawn by the dashboard). /devices pages: its query
parameters are `DevicesPage`, declared here so the merger checks them and the gateway documents and
forwards the same ones."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

#: The key of `statuses` for rows without a status.
NO_STATUS: Final = "none"
#: The status counted by `error_share`.
ERROR_STATUS: Final = "ERROR"
#: Devices per page of /devices, by default and at most.
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000


class DevicesPage(BaseModel):
    """Which page of /devices: the devices sorted by deviceId, `limit` of them after `after`."""

    limit: int = Field(
        default=DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="At most this many devices.", examples=[100]
    )
    after: str | None = Field(
        default=None,
        description="Only devices whose deviceId sorts after this one: the `next_after` of the previous page.",
        examples=["D100"],
    )


class Figures(BaseModel):
    """Figures over a set of one device's rows."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(description="Rows (readings) of the device.", examples=[1204])
    last_seen: datetime | None = Field(description="Newest eventTime of these rows (UTC), rows_out_of_range left out.")
    temperature_min: int | None = Field(description="Lowest temperature (None without any).", examples=[0])
    temperature_mean: float | None = Field(description="Mean temperature.", examples=[15.1])
    temperature_max: int | None = Field(description="Highest temperature.", examples=[30])
    statuses: dict[str, int] = Field(
        description=f"Rows by status; `{NO_STATUS}` counts rows without one.",
        examples=[{"SUCCESS": 400, "ERROR": 402, "STANDBY": 402}],
    )
    error_share: float | None = Field(description=f"Share of rows with status {ERROR_STATUS} (0..1).", examples=[0.33])
    rows_out_of_range: int = Field(
        default=0,
        description="Rows (in `rows`) whose eventTime a figure cannot hold: outside years 1-9999, or later than the "
        "merger's clock when they were counted. They are in no recent window and not in last_seen.",
    )


class DeviceFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deviceId: str = Field(examples=["D001"])
    total: Figures = Field(description="Over every merged row of the device (since it was last dropped, if ever).")
    recent: Figures = Field(description="Over the recent window (see DevicesResponse.window_s).")


class DevicesResponse(BaseModel):
    """One page of the devices seen in merged.csv, as of the committed bytes covered. The merger keeps
    the `devices_kept` most recently merged devices (MERGER_DEVICES_MAX); older ones are dropped and
    counted in devices_dropped / rows_dropped (a dropped device seen again starts over)."""

    model_config = ConfigDict(extra="forbid")

    window_s: int = Field(
        description="The recent window: rows whose eventTime lies in the last window_s whole seconds up to now "
        "(window_end, the merger's clock).",
        examples=[300],
    )
    window_end: datetime | None = Field(description="The end of the recent window: now, by the merger's clock (UTC).")
    covered_size: int = Field(
        description="Bytes of merged.csv these figures cover (header included). In segments: of the merged stream "
        "ever written (every segment's data lines, retired ones included)."
    )
    committed_size: int = Field(
        description="Committed bytes of merged.csv now (as covered_size); equal once caught up."
    )
    rows: int = Field(description="Rows covered, those without a deviceId included.")
    rows_without_device: int = Field(description="Rows without a deviceId (in no device's figures).")
    rows_out_of_range: int = Field(
        default=0, description="Rows covered whose eventTime a figure cannot hold (see Figures.rows_out_of_range)."
    )
    devices_kept: int = Field(default=0, description="Devices in the figures (every page together).")
    devices_dropped: int = Field(
        default=0, description="Times a device was dropped to keep at most MERGER_DEVICES_MAX (least recently merged)."
    )
    rows_dropped: int = Field(default=0, description="Rows of the dropped devices (counted in `rows`).")
    rows_retired: int = Field(
        default=0,
        description="Rows retention removed from merged.csv (MERGER_RETAIN_*): counted in `rows` when they were "
        "covered before; no longer in merged.csv, not missing.",
    )
    devices: list[DeviceFigures] = Field(description="This page, sorted by deviceId.")
    next_after: str | None = Field(
        default=None, description="Pass as `after` for the next page; None on the last page."
    )
