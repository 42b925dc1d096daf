"""Prometheus metrics of one merger app, in a registry of its own."""

from __future__ import annotations

import bisect
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from contract.merger_status import SOURCE_EVENT_KINDS
from services.merger.state import MergerState

FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class BulkHistogram(Collector):
    """A histogram fed a whole column at once (one vectorised count per bucket instead of one
    `observe` call per row, which would cost more than the merge itself)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * (len(self.bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: pl.Series) -> None:
        if values.len() == 0:
            return
        below = [int((values <= b).sum()) for b in self.bounds]
        per_bucket = [below[0]] + [below[i] - below[i - 1] for i in range(1, len(below))]
        per_bucket.append(values.len() - below[-1])
        total = float(values.sum())
        with self._lock:
            for i, n in enumerate(per_bucket):
                self._counts[i] += n
            self._sum += total

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.bounds, value)] += 1
            self._sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, acc = [], 0
        for bound, n in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            acc += n
            cumulative.append((bound, acc))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative, sum_value=total)


class DataDiskCollector(Collector):
    """Free and total bytes of the file system holding the data folder, read at each scrape (the
    disk alert watches them; a full disk stops the merger's commits)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError:
            return
        yield GaugeMetricFamily("devicestream_data_disk_free_bytes", "Bytes free in the data folder.", usage.free)
        yield GaugeMetricFamily("devicestream_data_disk_size_bytes", "Size of the data folder's disk.", usage.total)


class StateCollector(Collector):
    """Figures of the committed state, read at each scrape (nothing before it is loaded: a restart
    shows the same totals again, never a drop to 0 and back, which increase() would take for new
    events):
    - merger_source_events_total{kind}: the source events recorded since the state began
      (MergerState.event_counts), every kind at 0 included, so an alert sees the first one as an
      increase;
    - merger_segments{compacted}: the closed segments retained, with and without their Parquet copy
      (compaction keeping up: few without), and merger_segments_retired_total."""

    def __init__(self, state: Callable[[], MergerState | None]) -> None:
        self.state = state

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        state = self.state()
        if state is None:
            return
        counts = state.event_counts
        events = CounterMetricFamily(
            "merger_source_events",
            "Source events recorded in /merger/status `events`, by kind (contract.merger_status.SourceEvent): "
            "offsets_skipped and offsets_given_up are records not merged.",
            labels=["kind"],
        )
        for kind in (*SOURCE_EVENT_KINDS, *sorted(counts.keys() - set(SOURCE_EVENT_KINDS))):
            events.add_metric([kind], counts.get(kind, 0))
        yield events
        segments = GaugeMetricFamily(
            "merger_segments",
            "Closed segments of merged.csv retained (MERGER_SEGMENT_BYTES), by whether their Parquet copy is "
            "committed (MERGER_COMPACT_SEGMENTS).",
            labels=["compacted"],
        )
        compacted = sum(1 for g in state.segments if g.parquet is not None)
        segments.add_metric(["true"], compacted)
        segments.add_metric(["false"], len(state.segments) - compacted)
        yield segments
        yield CounterMetricFamily(
            "merger_segments_retired",
            "Closed segments removed by retention (MERGER_RETAIN_BYTES, MERGER_RETAIN_AGE_S).",
            state.segments_retired,
        )


class MergerMetrics:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_start_time_seconds: the restart alert watches it
        if data_dir is not None:
            self.registry.register(DataDiskCollector(data_dir))
        self.rows_merged = Counter("merger_rows_merged", "Rows appended to merged.csv.", registry=self.registry)
        self.batches_merged = Counter(
            "merger_batches_merged", "Batch files whose rows were appended.", registry=self.registry
        )
        self.empty_batches = Counter("merger_empty_batches", "Empty batch files skipped.", registry=self.registry)
        self.quarantined = Counter(
            "merger_quarantined_batches", "Invalid batch files moved to quarantine.", registry=self.registry
        )
        self.stale_removed = Counter(
            "merger_stale_batches_removed",
            "Re-written files of already merged batches removed.",
            registry=self.registry,
        )
        self.io_errors = Counter("merger_io_errors", "Merge passes failed by an I/O error.", registry=self.registry)
        self.disk_full = Gauge(
            "merger_disk_full",
            "1 while merging is paused because a write in the merger's folder fails for want of space "
            "(ENOSPC, EDQUOT; /merger/status write_blocked names the folder); 0 otherwise.",
            registry=self.registry,
        )
        self.merge_duration = Histogram(
            "merger_merge_duration_seconds",
            "Duration of one commit (read, check, append, fsync, state write) of a group of batches.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.freshness = BulkHistogram(
            "merger_freshness_seconds", "Time from a row's eventTime to its merge.", FRESHNESS_BUCKETS
        )
        self.registry.register(self.freshness)
