"""GET /devices and /devices/{deviceId}: per-device figures the merger keeps as rows are merged
(written by the merger, forwarded by the gateway, drawn by the dashboard)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, Field

#: The key of `statuses` for rows without a status.
NO_STATUS: Final = "none"
#: The status counted by `error_share`.
ERROR_STATUS: Final = "ERROR"


class Figures(BaseModel):
    """Figures over a set of one device's rows."""

    rows: int = Field(description="Rows (readings) of the device.", examples=[1204])
    last_seen: datetime | None = Field(description="Newest eventTime of these rows (UTC).")
    temperature_min: int | None = Field(description="Lowest temperature (None without any).", examples=[0])
    temperature_mean: float | None = Field(description="Mean temperature.", examples=[15.1])
    temperature_max: int | None = Field(description="Highest temperature.", examples=[30])
    statuses: dict[str, int] = Field(
        description=f"Rows by status; `{NO_STATUS}` counts rows without one.",
        examples=[{"SUCCESS": 400, "ERROR": 402, "STANDBY": 402}],
    )
    error_share: float | None = Field(description=f"Share of rows with status {ERROR_STATUS} (0..1).", examples=[0.33])


class DeviceFigures(BaseModel):
    deviceId: str = Field(examples=["D001"])
    total: Figures = Field(description="Over every merged row of the device.")
    recent: Figures = Field(description="Over the recent window (see DevicesResponse.window_s).")


class DevicesResponse(BaseModel):
    """Every device seen in merged.csv, as of the committed bytes covered."""

    window_s: int = Field(
        description="The recent window: rows whose eventTime lies in the last window_s whole seconds up to "
        "the newest eventTime merged (window_end), so it follows the data, not the wall clock.",
        examples=[300],
    )
    window_end: datetime | None = Field(description="The newest eventTime merged (UTC); None before any row.")
    covered_size: int = Field(description="Bytes of merged.csv these figures cover (header included).")
    committed_size: int = Field(description="Committed bytes of merged.csv now; equal once caught up.")
    rows: int = Field(description="Rows covered, those without a deviceId included.")
    rows_without_device: int = Field(description="Rows without a deviceId (in no device's figures).")
    devices: list[DeviceFigures] = Field(description="Sorted by deviceId.")
