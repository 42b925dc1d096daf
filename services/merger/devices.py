"""Per-device figures over merged.csv (pure): a DeviceBook takes the rows of each newly committed
stretch of merged.csv and keeps, per device, the figures over every row and over a recent window.

The recent window follows the data: rows whose eventTime falls in the last `window_s` whole seconds
up to the newest eventTime merged. It is kept as one aggregate per device and second, so adding a
batch costs in proportion to the batch (its rows, grouped by device, second and status) and the
memory is bounded by devices x window_s, whatever the size of merged.csv. Minimum and maximum over
the window are exact: they are the minimum and maximum over its seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

from contract.csv import ROW_COLUMNS, ROW_DTYPES
from contract.devices import ERROR_STATUS, NO_STATUS, DeviceFigures, DevicesResponse, Figures

_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
SCHEMA: Final = pl.Schema({c: _TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS})
#: The columns the figures need (indices into a headerless merged.csv row).
USED: Final = [ROW_COLUMNS.index(c) for c in ("eventTime", "deviceId", "temperature", "status")]
EVENT_TIME_PARSE: Final = "%Y-%m-%dT%H:%M:%S%.fZ"
US: Final = 1_000_000
BOOK_VERSION: Final = 1


@dataclass(slots=True)
class Agg:
    """Aggregate of a set of rows: counts, temperature sum/min/max, newest eventTime, statuses."""

    rows: int = 0
    temp_n: int = 0
    temp_sum: int = 0
    temp_min: int | None = None
    temp_max: int | None = None
    last_us: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, o: Agg) -> None:
        self.rows += o.rows
        self.temp_n += o.temp_n
        self.temp_sum += o.temp_sum
        if o.temp_min is not None:
            self.temp_min = o.temp_min if self.temp_min is None else min(self.temp_min, o.temp_min)
        if o.temp_max is not None:
            self.temp_max = o.temp_max if self.temp_max is None else max(self.temp_max, o.temp_max)
        if o.last_us is not None:
            self.last_us = o.last_us if self.last_us is None else max(self.last_us, o.last_us)
        for k, v in o.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v

    def figures(self) -> Figures:
        return Figures(
            rows=self.rows,
            last_seen=None if self.last_us is None else datetime.fromtimestamp(self.last_us / US, UTC),
            temperature_min=self.temp_min,
            temperature_mean=None if not self.temp_n else self.temp_sum / self.temp_n,
            temperature_max=self.temp_max,
            statuses=dict(sorted(self.statuses.items())),
            error_share=None if not self.rows else self.statuses.get(ERROR_STATUS, 0) / self.rows,
        )

    def to_json(self) -> list[Any]:
        return [self.rows, self.temp_n, self.temp_sum, self.temp_min, self.temp_max, self.last_us, self.statuses]

    @classmethod
    def from_json(cls, doc: list[Any]) -> Agg:
        rows, temp_n, temp_sum, temp_min, temp_max, last_us, statuses = doc
        return cls(rows, temp_n, temp_sum, temp_min, temp_max, last_us, {str(k): int(v) for k, v in statuses.items()})


def parse_rows(data: bytes) -> pl.DataFrame:
    """The columns the figures need from whole data lines of merged.csv (no header):
    eventTime as epoch microseconds, deviceId, temperature, status."""
    df = pl.read_csv(data, has_header=False, schema=SCHEMA, columns=USED)
    return df.with_columns(
        pl.col("eventTime").str.to_datetime(EVENT_TIME_PARSE, time_unit="us", strict=False).cast(pl.Int64)
    )


class DeviceBook:
    """Figures per device, over all rows and over the recent window. Not thread-safe."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.rows = 0
        self.rows_without_device = 0
        self.newest_us: int | None = None
        self.total: dict[str, Agg] = {}
        #: device -> second (epoch) -> aggregate, only the seconds inside the window
        self.seconds: dict[str, dict[int, Agg]] = {}

    @property
    def window_start(self) -> int | None:
        """The first second (epoch) inside the recent window."""
        return None if self.newest_us is None else self.newest_us // US - self.window_s + 1

    def apply(self, df: pl.DataFrame) -> None:
        """Add rows (as parse_rows gives them)."""
        if df.height == 0:
            return
        grouped = (
            df.group_by(pl.col("deviceId"), (pl.col("eventTime") // US).alias("second"), pl.col("status"))
            .agg(
                pl.len().alias("rows"),
                pl.col("temperature").count().alias("temp_n"),
                pl.col("temperature").sum().alias("temp_sum"),
                pl.col("temperature").min().alias("temp_min"),
                pl.col("temperature").max().alias("temp_max"),
                pl.col("eventTime").max().alias("last_us"),
            )
            .rows()
        )
        newest = max(g[-1] for g in grouped)
        if self.newest_us is None or newest > self.newest_us:
            self.newest_us = newest
        start = self.window_start
        assert start is not None
        for device, second, status, rows, temp_n, temp_sum, temp_min, temp_max, last_us in grouped:
            self.rows += rows
            if device is None:
                self.rows_without_device += rows
                continue
            agg = Agg(rows, temp_n, temp_sum if temp_n else 0, temp_min, temp_max, last_us, {status or NO_STATUS: rows})
            self.total.setdefault(device, Agg()).add(agg)
            if second >= start:
                self.seconds.setdefault(device, {}).setdefault(second, Agg()).add(agg)
        self._prune(start)

    def _prune(self, start: int) -> None:
        for per_second in self.seconds.values():
            for second in [s for s in per_second if s < start]:
                del per_second[second]

    def recent(self, device: str) -> Agg:
        out = Agg()
        for agg in self.seconds.get(device, {}).values():
            out.add(agg)
        return out

    def device(self, device: str) -> DeviceFigures | None:
        total = self.total.get(device)
        if total is None:
            return None
        return DeviceFigures(deviceId=device, total=total.figures(), recent=self.recent(device).figures())

    def response(self, covered_size: int, committed_size: int, only: str | None = None) -> DevicesResponse:
        names = sorted(self.total) if only is None else [only]
        devices = [d for d in (self.device(n) for n in names) if d is not None]
        return DevicesResponse(
            window_s=self.window_s,
            window_end=None if self.newest_us is None else datetime.fromtimestamp(self.newest_us / US, UTC),
            covered_size=covered_size,
            committed_size=committed_size,
            rows=self.rows,
            rows_without_device=self.rows_without_device,
            devices=devices,
        )

    # -- snapshot ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": BOOK_VERSION,
            "window_s": self.window_s,
            "rows": self.rows,
            "rows_without_device": self.rows_without_device,
            "newest_us": self.newest_us,
            "total": {d: a.to_json() for d, a in self.total.items()},
            "seconds": {d: {str(s): a.to_json() for s, a in per.items()} for d, per in self.seconds.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeviceBook:
        """Raises ValueError (or KeyError/TypeError) when `doc` is not a book of this version."""
        if doc.get("version") != BOOK_VERSION:
            raise ValueError(f"device book version {doc.get('version')!r}, expected {BOOK_VERSION}")
        book = cls(int(doc["window_s"]))
        book.rows = int(doc["rows"])
        book.rows_without_device = int(doc["rows_without_device"])
        book.newest_us = None if doc["newest_us"] is None else int(doc["newest_us"])
        book.total = {str(d): Agg.from_json(a) for d, a in doc["total"].items()}
        book.seconds = {str(d): {int(s): Agg.from_json(a) for s, a in per.items()} for d, per in doc["seconds"].items()}
        return book
