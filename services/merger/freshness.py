"""End-to-end freshness: the time from a row's eventTime to the moment its batch was merged."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import polars as pl

#: Each merged batch keeps at most this many evenly spaced quantile points of its freshness values,
#: weighted by the rows they stand for: memory stays flat whatever the row rate.
SAMPLE_POINTS = 256


@dataclass(frozen=True)
class _BatchSample:
    merged_at: float
    values: tuple[float, ...]  # sorted
    weight: float  # rows each value stands for


class FreshnessWindow:
    """Freshness of recently merged rows: the last value and p50/p99 over a sliding window."""

    def __init__(self, window_s: float = 60.0, max_batches: int = 2000) -> None:
        self.window_s = window_s
        self._samples: deque[_BatchSample] = deque(maxlen=max_batches)
        self._last: float | None = None
        self._lock = threading.Lock()

    def add(self, merged_at: float, freshness_s: pl.Series) -> None:
        """Record a batch's per-row freshness (seconds). The last value is that of the batch's newest
        row: how old the freshest data in merged.csv was when it landed there."""
        n = freshness_s.len()
        if n == 0:
            return
        ordered = freshness_s.sort()
        if n > SAMPLE_POINTS:
            idx = [round(i * (n - 1) / (SAMPLE_POINTS - 1)) for i in range(SAMPLE_POINTS)]
            ordered = ordered.gather(idx)
        values = tuple(float(v) for v in ordered.to_list())
        with self._lock:
            self._samples.append(_BatchSample(merged_at, values, n / len(values)))
            self._last = values[0]

    def snapshot(self, now: float) -> dict[str, float | None]:
        with self._lock:
            while self._samples and self._samples[0].merged_at < now - self.window_s:
                self._samples.popleft()
            points = [(v, s.weight) for s in self._samples for v in s.values]
            last = self._last
        return {"last_s": last, "p50_s": _quantile(points, 0.50), "p99_s": _quantile(points, 0.99)}


def _quantile(points: list[tuple[float, float]], q: float) -> float | None:
    """Weighted quantile (the smallest value whose cumulative weight reaches q of the total)."""
    if not points:
        return None
    points.sort()
    total = sum(w for _, w in points)
    target = q * total
    acc = 0.0
    for v, w in points:
        acc += w
        if acc >= target:
            return round(v, 6)
    return round(points[-1][0], 6)
