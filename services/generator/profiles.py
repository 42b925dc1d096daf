"""Rate profiles as pure curves, and a RateController that paces along one.

A curve gives the rate at time t (seconds since the profile began) and its integral I(t), the
number of events due by t. Event k is scheduled at the t where I(t) = k: the pacing follows the
curve smoothly (no once-a-second bursts), and, as in RateController, the count due is computed
from the schedule, so sleep jitter never accumulates into drift.

Nothing here reads a clock."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from contract.generator_options import (
    BurstProfile,
    ConstantProfile,
    RampProfile,
    SineProfile,
    StepsProfile,
)
from services.generator.rate import RateController

AnyProfile = ConstantProfile | RampProfile | StepsProfile | BurstProfile | SineProfile

#: While no event is due for a long time (a rate of 0), the caller looks again this often.
IDLE_WAIT_S = 0.25


class Curve:
    def rate_at(self, t: float) -> float:
        raise NotImplementedError

    def integral(self, t: float) -> float:
        """Events due from 0 to t (t >= 0)."""
        raise NotImplementedError

    def time_of(self, n: float, after: float) -> float | None:
        """The first t >= after with integral(t) >= n, or None when the curve never gets there (by
        bisection: integral is non-decreasing)."""
        if self.integral(after) >= n:
            return after
        hi, span = after, 1.0
        while self.integral(hi) < n:
            hi = after + span
            span *= 2
            if span > 1e7:
                return None
        lo = after
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.integral(mid) >= n:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-7:
                break
        return hi


@dataclass(frozen=True)
class Constant(Curve):
    rate: float

    def rate_at(self, t: float) -> float:
        return self.rate

    def integral(self, t: float) -> float:
        return self.rate * max(t, 0.0)

    def time_of(self, n: float, after: float) -> float | None:
        if self.integral(after) >= n:
            return after
        return n / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class Ramp(Curve):
    start: float
    end: float
    over_s: float

    def rate_at(self, t: float) -> float:
        if t >= self.over_s:
            return self.end
        return self.start + (self.end - self.start) * max(t, 0.0) / self.over_s

    def integral(self, t: float) -> float:
        t = max(t, 0.0)
        u = min(t, self.over_s)
        ramp = self.start * u + (self.end - self.start) * u * u / (2 * self.over_s)
        return ramp + self.end * (t - u)


@dataclass(frozen=True)
class Steps(Curve):
    rates: tuple[float, ...]
    durations: tuple[float, ...]

    def __post_init__(self) -> None:
        ends, cum, t, n = [], [0.0], 0.0, 0.0
        for r, d in zip(self.rates, self.durations, strict=True):
            t += d
            n += r * d
            ends.append(t)
            cum.append(n)
        object.__setattr__(self, "_ends", ends)
        object.__setattr__(self, "_cum", cum)

    def _index(self, t: float) -> int:
        return min(bisect.bisect_right(self._ends, t), len(self.rates) - 1)  # type: ignore[attr-defined]

    def rate_at(self, t: float) -> float:
        return self.rates[self._index(t)]

    def integral(self, t: float) -> float:
        t = max(t, 0.0)
        i = self._index(t)
        start = self._ends[i - 1] if i else 0.0  # type: ignore[attr-defined]
        return self._cum[i] + self.rates[i] * (t - start)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Burst(Curve):
    base: float
    burst: float
    burst_s: float
    period_s: float

    def rate_at(self, t: float) -> float:
        return self.burst if math.fmod(max(t, 0.0), self.period_s) < self.burst_s else self.base

    def integral(self, t: float) -> float:
        t = max(t, 0.0)
        periods, rest = divmod(t, self.period_s)
        per_period = self.burst * self.burst_s + self.base * (self.period_s - self.burst_s)
        in_burst = min(rest, self.burst_s)
        return periods * per_period + self.burst * in_burst + self.base * (rest - in_burst)


@dataclass(frozen=True)
class Sine(Curve):
    mean: float
    amplitude: float
    period_s: float

    def rate_at(self, t: float) -> float:
        return self.mean + self.amplitude * math.sin(2 * math.pi * t / self.period_s)

    def integral(self, t: float) -> float:
        t = max(t, 0.0)
        w = 2 * math.pi / self.period_s
        return self.mean * t + self.amplitude / w * (1 - math.cos(w * t))


def curve_of(p: AnyProfile) -> Curve:
    if isinstance(p, ConstantProfile):
        return Constant(p.rate)
    if isinstance(p, RampProfile):
        return Ramp(p.from_rate, p.to_rate, p.over_s)
    if isinstance(p, StepsProfile):
        return Steps(tuple(s.rate for s in p.steps), tuple(s.duration_s for s in p.steps))
    if isinstance(p, BurstProfile):
        return Burst(p.base_rate, p.burst_rate, p.burst_s, p.period_s)
    return Sine(p.mean, p.amplitude, p.period_s)


class ProfileController(RateController):
    """RateController whose schedule is a curve's integral instead of a straight line: `take`,
    `wait_s`, the catch-up limit (max_lag_s at the current rate) and `set_rate` work as there."""

    def __init__(self, curve: Curve, now: float, *, max_lag_s: float = 1.0) -> None:
        super().__init__(1.0, now, max_lag_s=max_lag_s)
        self._set_curve(curve, now, 0.0)

    def _set_curve(self, curve: Curve, now: float, scheduled: float) -> None:
        self.curve = curve
        self._curve_t0 = now
        self._base_t = now
        self._base_n = scheduled
        self._rate = curve.rate_at(0.0)

    def _scheduled(self, now: float) -> float:
        c, t0 = self.curve, self._curve_t0
        return self._base_n + max(0.0, c.integral(now - t0) - c.integral(self._base_t - t0))

    def rate_now(self, now: float) -> float:
        """The rate the curve asks for at `now`."""
        return self.curve.rate_at(now - self._curve_t0)

    def set_curve(self, curve: Curve, now: float) -> None:
        """Follow `curve` from `now` on (its t = 0 is now); what was due stays due."""
        self._set_curve(curve, now, self._scheduled(now))

    def set_rate(self, rate: float, now: float) -> None:
        self.set_curve(Constant(rate), now)

    def take(self, now: float, limit: int | None = None) -> int:
        self._rate = self.rate_now(now)
        return super().take(now, limit)

    def wait_s(self, now: float) -> float:
        self._rate = self.rate_now(now)
        if self.emitted - self._scheduled(now) <= 0:
            return 0.0
        # event number `emitted` (0-based) is due when the schedule reaches it
        c, t0 = self.curve, self._curve_t0
        target = self.emitted - self._base_n + c.integral(self._base_t - t0)
        at = c.time_of(target, now - t0)
        if at is None:
            return IDLE_WAIT_S
        return min(max(0.0, at - (now - t0)), IDLE_WAIT_S * 40)
