"""Rate control without drift: a pure schedule of event k at base_time + k / rate.

The caller asks `take(now)` how many events are due, emits them, and sleeps `wait_s(now)` (or
less). Because the count due is computed from the schedule, not from the last tick, sleep jitter
and slow ticks never accumulate into drift. A rate change rebases the schedule at the moment of
the change. If the caller falls further behind than `max_lag_s` (the machine cannot keep up, or
the producer was blocked by backpressure), the schedule is moved forward instead of bursting to
catch up: above what the machine can do, the run goes as fast as it can.

Time is a float in seconds from any monotonic clock; nothing here reads a clock."""

from __future__ import annotations

import math


class RateController:
    def __init__(self, rate: float, now: float, *, max_lag_s: float = 1.0) -> None:
        _check_rate(rate)
        self._rate = rate
        self._base_t = now
        self._base_n = 0.0  # events scheduled before base_t (fractional)
        self.max_lag_s = max_lag_s
        self.emitted = 0
        self.skipped = 0.0  # events dropped from the schedule because the caller fell behind

    @property
    def rate(self) -> float:
        return self._rate

    def _scheduled(self, now: float) -> float:
        """Events scheduled at or before `now` (fractional; event k is due at k/rate)."""
        return self._base_n + max(0.0, now - self._base_t) * self._rate

    def set_rate(self, rate: float, now: float) -> None:
        _check_rate(rate)
        self._base_n = self._scheduled(now)
        self._base_t = now
        self._rate = rate

    def due(self, now: float) -> int:
        """How many events are due now and not yet emitted (event 0 is due at once)."""
        return max(0, math.floor(self._scheduled(now)) + 1 - self.emitted)

    def take(self, now: float, limit: int | None = None) -> int:
        """The number of events to emit now (at most `limit`); counts them as emitted."""
        max_lag = max(self._rate * self.max_lag_s, 1.0)
        lag = self._scheduled(now) - self.emitted
        if lag > max_lag + 1:
            # Too far behind: forget the backlog beyond max_lag rather than bursting.
            self.skipped += lag - max_lag
            self._base_n = self.emitted + max_lag
            self._base_t = now
        n = self.due(now)
        if limit is not None:
            n = min(n, limit)
        self.emitted += n
        return n

    def wait_s(self, now: float) -> float:
        """Seconds until the next event is due (0 when one is due now)."""
        missing = self.emitted - math.floor(self._scheduled(now))  # >= 1 when nothing is due
        if missing <= 0:
            return 0.0
        # next event index `emitted` is due when scheduled(t) reaches `emitted`
        return max(0.0, (self.emitted - self._scheduled(now)) / self._rate)


def _check_rate(rate: float) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
