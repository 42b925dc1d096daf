"""Per-device figures over merged.csv (pure): a DeviceBook takes the rows of each newly committed
stretch of merged.csv and keeps, per device, the figures over every row and over a recent window.

The recent window is anchored at now (the caller's clock): rows whose eventTime falls in the last
`window_s` whole seconds up to now. It is kept as one aggregate per device and second, so adding a
batch costs in proportion to the batch (its rows, grouped by device, second and status) and the
memory is bounded by devices x window_s, whatever the size of merged.csv. Minimum and maximum over
the window are exact: they are the minimum and maximum over its seconds.

Every valid eventTime is taken: one a figure cannot hold (outside years 1-9999, which a valid record
can reach through its zone, or later than the clock when counted) is counted in the device's totals
and in `rows_out_of_range`, never in a recent window or in last_seen. Times are converted exactly
(integer microseconds), never through a float.

The book keeps the `max_devices` most recently merged devices; the least recently merged are dropped
and counted (devices_dropped, rows_dropped)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from contract.csv import ROW_COLUMNS, ROW_DTYPES
from contract.devices import ERROR_STATUS, NO_STATUS, DeviceFigures, DevicesResponse, Figures
from services.merger.device_snapshot import AggRow, BookDoc

_TYPES: Final = {"str": pl.String, "i64": pl.Int64, "i32": pl.Int32}
SCHEMA: Final = pl.Schema({c: _TYPES[ROW_DTYPES[c]] for c in ROW_COLUMNS})
#: The columns the figures need (indices into a headerless merged.csv row).
USED: Final = [ROW_COLUMNS.index(c) for c in ("eventTime", "deviceId", "temperature", "status")]
EVENT_TIME_PARSE: Final = "%Y-%m-%dT%H:%M:%S%.fZ"
US: Final = 1_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The eventTimes a figure (a datetime) can hold, as epoch microseconds.
MIN_US: Final = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
MAX_US: Final = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


def to_datetime(us: int) -> datetime:
    """Epoch microseconds as a UTC datetime, exactly (no float on the way)."""
    return EPOCH + timedelta(microseconds=us)


def now_us() -> int:
    return (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)


@dataclass(slots=True)
class Agg:
    """Aggregate of a set of rows: counts, temperature sum/min/max, newest eventTime in range,
    statuses, rows whose eventTime is out of range."""

    rows: int = 0
    temp_n: int = 0
    temp_sum: int = 0
    temp_min: int | None = None
    temp_max: int | None = None
    last_us: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    out_of_range: int = 0

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
        self.out_of_range += o.out_of_range

    def figures(self) -> Figures:
        return Figures(
            rows=self.rows,
            last_seen=None if self.last_us is None else to_datetime(self.last_us),
            temperature_min=self.temp_min,
            temperature_mean=None if not self.temp_n else self.temp_sum / self.temp_n,
            temperature_max=self.temp_max,
            statuses=dict(sorted(self.statuses.items())),
            error_share=None if not self.rows else self.statuses.get(ERROR_STATUS, 0) / self.rows,
            rows_out_of_range=self.out_of_range,
        )

    def row(self) -> AggRow:
        """As devices.json writes it (services.merger.device_snapshot)."""
        return (
            self.rows,
            self.temp_n,
            self.temp_sum,
            self.temp_min,
            self.temp_max,
            self.last_us,
            self.statuses,
            self.out_of_range,
        )

    @classmethod
    def of(cls, row: AggRow) -> Agg:
        rows, temp_n, temp_sum, temp_min, temp_max, last_us, statuses, out_of_range = row
        return cls(rows, temp_n, temp_sum, temp_min, temp_max, last_us, dict(statuses), out_of_range)


def parse_rows(data: bytes) -> pl.DataFrame:
    """The columns the figures need from whole data lines of merged.csv (no header):
    eventTime as epoch microseconds (null when unreadable), deviceId, temperature, status."""
    df = pl.read_csv(data, has_header=False, schema=SCHEMA, columns=USED)
    return df.with_columns(
        pl.col("eventTime").str.to_datetime(EVENT_TIME_PARSE, time_unit="us", strict=False).cast(pl.Int64)
    )


class DeviceBook:
    """Figures per device, over all rows and over the recent window. Not thread-safe."""

    def __init__(self, window_s: int, max_devices: int = 10_000) -> None:
        self.window_s = window_s
        self.max_devices = max_devices
        self.rows = 0
        self.rows_without_device = 0
        self.rows_out_of_range = 0
        self.devices_dropped = 0
        self.rows_dropped = 0
        #: device -> figures over all its rows, least recently merged first
        self.total: dict[str, Agg] = {}
        #: device -> second (epoch) -> aggregate, only the seconds inside the window
        self.seconds: dict[str, dict[int, Agg]] = {}

    def window_start(self, now: int) -> int:
        """The first second (epoch) inside the recent window ending at `now` (epoch microseconds)."""
        return now // US - self.window_s + 1

    def apply(self, df: pl.DataFrame, now: int) -> None:
        """Add rows (as parse_rows gives them), `now` being the clock (epoch microseconds)."""
        if df.height == 0:
            return
        t = pl.col("eventTime")
        in_range = t.is_not_null() & (t >= MIN_US) & (t <= min(MAX_US, now))
        grouped = (
            df.with_columns(pl.when(in_range).then(t).alias("t"), pl.int_range(pl.len()).alias("idx"))
            .group_by(pl.col("deviceId"), (pl.col("t") // US).alias("second"), pl.col("status"))
            .agg(
                pl.len().alias("rows"),
                pl.col("temperature").count().alias("temp_n"),
                pl.col("temperature").sum().alias("temp_sum"),
                pl.col("temperature").min().alias("temp_min"),
                pl.col("temperature").max().alias("temp_max"),
                pl.col("t").max().alias("last_us"),
                pl.col("t").null_count().alias("out_of_range"),
                pl.col("idx").max().alias("idx"),
            )
            .rows()
        )
        start = self.window_start(now)
        last_idx: dict[str, int] = {}
        for device, second, status, rows, temp_n, temp_sum, temp_min, temp_max, last_us, oor, idx in grouped:
            self.rows += rows
            self.rows_out_of_range += oor
            if device is None:
                self.rows_without_device += rows
                continue
            statuses = {status or NO_STATUS: rows}
            agg = Agg(rows, temp_n, temp_sum if temp_n else 0, temp_min, temp_max, last_us, statuses, oor)
            self.total.setdefault(device, Agg()).add(agg)
            if second is not None and second >= start:
                self.seconds.setdefault(device, {}).setdefault(second, Agg()).add(agg)
            last_idx[device] = max(idx, last_idx.get(device, -1))
        # Most recently merged last (by the position of each device's last row): the order, and so
        # which devices are dropped, does not depend on how merged.csv was cut into chunks.
        for device in sorted(last_idx, key=last_idx.__getitem__):
            self.total[device] = self.total.pop(device)
        self._drop()
        self._prune(start)

    def _drop(self) -> None:
        while len(self.total) > self.max_devices:
            device = next(iter(self.total))
            agg = self.total.pop(device)
            self.seconds.pop(device, None)
            self.devices_dropped += 1
            self.rows_dropped += agg.rows

    def _prune(self, start: int) -> None:
        for device in list(self.seconds):
            per_second = self.seconds[device]
            for second in [s for s in per_second if s < start]:
                del per_second[second]
            if not per_second:
                del self.seconds[device]

    def recent(self, device: str, now: int) -> Agg:
        out = Agg()
        start, end = self.window_start(now), now // US
        for second, agg in self.seconds.get(device, {}).items():
            if start <= second <= end:
                out.add(agg)
        return out

    def device(self, device: str, now: int) -> DeviceFigures | None:
        total = self.total.get(device)
        if total is None:
            return None
        return DeviceFigures(deviceId=device, total=total.figures(), recent=self.recent(device, now).figures())

    def page(self, limit: int, after: str | None) -> tuple[list[str], str | None]:
        """The deviceIds of one page (sorted), and the `after` of the next page (None: the last)."""
        names = sorted(self.total)
        i = 0 if after is None else bisect.bisect_right(names, after)
        page = names[i : i + limit]
        return page, page[-1] if page and i + limit < len(names) else None

    def response(
        self,
        covered_size: int,
        committed_size: int,
        now: int,
        *,
        only: str | None = None,
        limit: int = 100,
        after: str | None = None,
        rows_retired: int = 0,
    ) -> DevicesResponse:
        names, next_after = ([only], None) if only is not None else self.page(limit, after)
        devices = [d for d in (self.device(n, now) for n in names) if d is not None]
        return DevicesResponse(
            window_s=self.window_s,
            window_end=to_datetime(now),
            covered_size=covered_size,
            committed_size=committed_size,
            rows=self.rows,
            rows_without_device=self.rows_without_device,
            rows_out_of_range=self.rows_out_of_range,
            devices_kept=len(self.total),
            devices_dropped=self.devices_dropped,
            rows_dropped=self.rows_dropped,
            rows_retired=rows_retired,
            devices=devices,
            next_after=next_after,
        )

    # -- snapshot ---------------------------------------------------------------------------------

    def to_doc(self) -> BookDoc:
        return BookDoc(
            window_s=self.window_s,
            rows=self.rows,
            rows_without_device=self.rows_without_device,
            rows_out_of_range=self.rows_out_of_range,
            devices_dropped=self.devices_dropped,
            rows_dropped=self.rows_dropped,
            total=[(d, a.row()) for d, a in self.total.items()],  # a list: the order matters
            seconds={d: {s: a.row() for s, a in per.items()} for d, per in self.seconds.items()},
        )

    @classmethod
    def from_doc(cls, doc: BookDoc, max_devices: int = 10_000) -> DeviceBook:
        book = cls(doc.window_s, max_devices)
        book.rows = doc.rows
        book.rows_without_device = doc.rows_without_device
        book.rows_out_of_range = doc.rows_out_of_range
        book.devices_dropped = doc.devices_dropped
        book.rows_dropped = doc.rows_dropped
        book.total = {d: Agg.of(a) for d, a in doc.total}
        book.seconds = {d: {s: Agg.of(a) for s, a in per.items()} for d, per in doc.seconds.items()}
        book._drop()  # a smaller MERGER_DEVICES_MAX than when it was saved
        return book
