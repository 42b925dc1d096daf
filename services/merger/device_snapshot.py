"""devices.json, the DeviceTracker's snapshot (services/merger/device_tracker.py): the DeviceBook
(services/merger/devices.py) and the generation and committed size of merged.csv it covers. The
merger alone writes and reads it; a file of another version, or that does not parse, is recounted.

The format is compact on purpose (a book holds up to devices x window seconds aggregates): an
aggregate is a list, [rows, temp_n, temp_sum, temp_min, temp_max, last_us, statuses, out_of_range]."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

BOOK_VERSION: Final = 2
SNAPSHOT_VERSION: Final = 2

#: One aggregate (services.merger.devices.Agg) as written.
AggRow = tuple[int, int, int, int | None, int | None, int | None, dict[str, int], int]


class BookDoc(BaseModel):
    """A DeviceBook: its counters, each device's figures over all its rows (least recently merged
    first: the order matters, it says which devices are dropped first), and per device and second
    (epoch) the aggregates inside the recent window."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[2] = BOOK_VERSION
    window_s: int
    rows: int
    rows_without_device: int
    rows_out_of_range: int
    devices_dropped: int
    rows_dropped: int
    total: list[tuple[str, AggRow]]
    seconds: dict[str, dict[int, AggRow]]


class DevicesSnapshot(BaseModel):
    """devices.json: the book and the part of merged.csv it covers."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[2] = SNAPSHOT_VERSION
    generation: str
    covered_size: int
    book: BookDoc
