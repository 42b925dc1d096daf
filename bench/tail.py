"""Follows merged.csv as it grows and measures each new row's freshness: the time it was seen in
the file minus its eventTime (polled every 20 ms, so the figure includes up to 20 ms of polling)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from contract.csv import ROW_COLUMNS

EVENT_TIME_COL = ROW_COLUMNS.index("eventTime")
KEEP_POINTS = 2000  # per second of observation: quantile points kept, weighted by the rows they stand for


@dataclass
class Second:
    rows: int = 0
    values: list[np.ndarray] = field(default_factory=list)
    closed: tuple[np.ndarray, np.ndarray, float, float] | None = None

    def close(self) -> None:
        """Keep at most KEEP_POINTS quantile points (weighted) and the second's p50/p99: memory flat."""
        if self.closed is not None:
            return
        v = np.concatenate(self.values) if self.values else np.empty(0)
        p50, p99 = (float(x) for x in np.quantile(v, (0.5, 0.99))) if len(v) else (float("nan"),) * 2
        if len(v) > KEEP_POINTS:
            self.closed = (
                np.quantile(v, np.linspace(0, 1, KEEP_POINTS)),
                np.full(KEEP_POINTS, len(v) / KEEP_POINTS),
                p50,
                p99,
            )
        else:
            self.closed = (v, np.ones(len(v)), p50, p99)
        self.values = []

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        self.close()
        assert self.closed is not None
        return self.closed[0], self.closed[1]


def freshness_of(chunk: bytes, seen_at: float) -> np.ndarray:
    """Seconds from each row's eventTime to `seen_at` (chunk: whole data lines)."""
    df = pl.read_csv(chunk, has_header=False, columns=[EVENT_TIME_COL], new_columns=["t"], infer_schema=False)
    us = df.get_column("t").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us").dt.epoch("us").to_numpy()
    return seen_at - us / 1e6


class MergedTail(threading.Thread):
    def __init__(self, path: Path, t0: float, poll_s: float = 0.02) -> None:
        super().__init__(name="merged-tail", daemon=True)
        self.path = path
        self.t0 = t0
        self.poll_s = poll_s
        self.seconds: dict[int, Second] = {}
        self.rows = 0
        #: While set, every chunk's (seen at, index of its first row, its rows' freshness) is kept for
        #: the phase breakdown (bench/e2e_phases.py); off by default (memory).
        self.keep_rows = False
        self.kept: list[tuple[float, int, np.ndarray]] = []
        self.error: BaseException | None = None
        self._stop_ev = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(10)
        if self.error:
            raise self.error

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as e:
            self.error = e

    def _follow(self) -> None:
        f = None
        pos = 0
        pending = b""
        header_skipped = False
        while not self._stop_ev.is_set():
            if f is None:
                try:
                    f = open(self.path, "rb")  # noqa: SIM115 - kept open while following
                except FileNotFoundError:
                    time.sleep(self.poll_s)
                    continue
            f.seek(pos)
            data = f.read()
            now = time.time()
            if data:
                pos += len(data)
                pending += data
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    chunk, pending = pending[: cut + 1], pending[cut + 1 :]
                    if not header_skipped:
                        nl = chunk.find(b"\n")
                        chunk = chunk[nl + 1 :]
                        header_skipped = True
                    if chunk:
                        self._record(now, freshness_of(chunk, now))
            time.sleep(self.poll_s)
        if f is not None:
            f.close()

    def _record(self, now: float, fresh: np.ndarray) -> None:
        sec = int(now - self.t0)
        with self._lock:
            if sec not in self.seconds:
                for old in self.seconds.values():
                    old.close()
            if self.keep_rows:
                self.kept.append((now, self.rows, fresh.astype(np.float64)))
            s = self.seconds.setdefault(sec, Second())
            s.rows += len(fresh)
            s.values.append(fresh.astype(np.float64))
            self.rows += len(fresh)

    # -- summaries --------------------------------------------------------------------------------

    def quantiles(self, since: float, until: float, qs: tuple[float, ...] = (0.5, 0.99)) -> tuple[list[float], int]:
        """Weighted quantiles of the freshness of rows seen in [since, until) (seconds after t0)."""
        with self._lock:
            picked = [s.points() for sec, s in self.seconds.items() if since <= sec < until]
            rows = sum(s.rows for sec, s in self.seconds.items() if since <= sec < until)
        if not picked:
            return [float("nan")] * len(qs), 0
        v = np.concatenate([p[0] for p in picked])
        w = np.concatenate([p[1] for p in picked])
        order = np.argsort(v)
        v, w = v[order], np.cumsum(w[order])
        return [float(v[min(np.searchsorted(w, q * w[-1]), len(v) - 1)]) for q in qs], rows

    def timeline(self) -> dict[str, list[float]]:
        with self._lock:
            secs = sorted(self.seconds)
            out: dict[str, list[float]] = {"t": [], "p50": [], "p99": [], "rate_rows": []}
            for sec in secs:
                s = self.seconds[sec]
                s.close()
                assert s.closed is not None
                out["t"].append(float(sec))
                out["p50"].append(s.closed[2])
                out["p99"].append(s.closed[3])
                out["rate_rows"].append(float(s.rows))
        return out
