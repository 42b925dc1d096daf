"""What every stage shares: the run configuration, figures and their verdicts, small statistics."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from devicestream import processes
from devicestream.paths import REPO_ROOT

PY = str(REPO_ROOT / ".venv" / "bin" / "python")


class StageError(RuntimeError):
    """A stage could not measure what it should; the message says why (the run exits non-zero)."""


@dataclass(frozen=True)
class Config:
    quick: bool
    out: Path

    @property
    def profiles(self) -> Path:
        return self.out / "profiles"


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Spread:
        if not samples:
            raise StageError("no samples to summarise")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def text(self, fmt: str = "{:,.0f}") -> str:
        if self.n == 1:
            return f"{fmt.format(self.median)} (n=1)"
        return f"{fmt.format(self.median)} [{fmt.format(self.min)}..{fmt.format(self.max)}] (n={self.n})"


Op = Literal["<=", ">=", "within"]


@dataclass(frozen=True)
class Target:
    """`on` is what the target judges: the figure's "value" or its "ratio" to the baseline.
    "within": |x - 1| <= limit (an accuracy)."""

    on: Literal["value", "ratio"]
    op: Op
    limit: float
    text: str

    def verdict(self, x: float) -> tuple[bool, float]:
        """(met, margin): margin > 0 is headroom, < 0 is the miss, in the unit of the limit."""
        if self.op == ">=":
            return x >= self.limit, x - self.limit
        if self.op == "<=":
            return x <= self.limit, self.limit - x
        dev = abs(x - 1.0)
        return dev <= self.limit, self.limit - dev


@dataclass
class Figure:
    stage: str
    name: str
    unit: str
    value: Spread
    baseline_name: str
    baseline: Spread | None
    target: Target
    #: ratio = value / baseline unless `ratio_inverted` (baseline / value, for times: higher is better)
    ratio_inverted: bool = False
    sizes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.median == 0 or self.value.median == 0:
            return None
        if self.ratio_inverted:
            return self.baseline.median / self.value.median
        return self.value.median / self.baseline.median

    def judged(self) -> float:
        x = self.value.median if self.target.on == "value" else self.ratio
        if x is None:
            raise StageError(f"{self.stage}/{self.name}: the target is on the ratio but there is no baseline")
        return x

    @property
    def met(self) -> bool:
        return self.target.verdict(self.judged())[0]

    def miss_text(self) -> str:
        met, margin = self.target.verdict(self.judged())
        x = self.judged()
        if self.target.op == "within":
            dev = abs(x - 1) * 100
            return f"{'met' if met else 'MISSED'}: off by {dev:.2f}% (limit {self.target.limit * 100:.0f}%)"
        rel = abs(margin) / self.target.limit * 100 if self.target.limit else 0.0
        word = "met" if met else "MISSED"
        by = "headroom" if met else "short by"
        return f"{word}: {by} {abs(margin):,.3g} ({rel:.0f}% of the target)"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratio"] = self.ratio
        doc["met"] = self.met
        doc["verdict"] = self.miss_text()
        return doc


@dataclass
class StageResult:
    stage: str
    figures: list[Figure] = field(default_factory=list)
    #: Time series for the plots (freshness over time ...), JSON-able.
    series: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def machine() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import pandas
    import polars
    import pyspark

    return {
        "host": platform.node(),
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gb": round(vm.total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
        "kafka": "4.1.1 (embedded KRaft broker, kafka-tools 4.1.1)",
        "pyspark": pyspark.__version__,
        "pandas": pandas.__version__,
        "polars": polars.__version__,
        "os": platform.platform(),
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    return res.stdout.strip() or "unknown"


def wait_until(
    pred: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05, logs: Sequence[Path] = ()
) -> Any:
    """Poll `pred` until it returns something truthy; StageError naming `what` (and the tails of
    `logs`) after `timeout_s`."""
    try:
        return processes.wait_until(pred, timeout_s, what, logs=logs, interval_s=interval_s)
    except processes.DeadlineExpired as e:
        raise StageError(str(e)) from None


#: "Flat": the cost per record at the larger size is within this factor of the smaller size's.
GROWTH_FLAT = 1.25


def growth_figure(
    stage: str, what: str, size_a: int, cost_a: list[float], size_b: int, cost_b: list[float], notes: list[str]
) -> Figure:
    """Cost as work grows (issue #25): the CPU cost per record of `what` at a larger size B against a
    smaller size A, same run; the ratio B/A says whether it stays flat. Costs in microseconds of CPU
    per record (the component's processes: a figure the machine's other load barely moves)."""
    return Figure(
        stage=stage,
        name=f"cost per record as work grows: {what}",
        unit="CPU-us/record",
        value=Spread.of(cost_b),
        baseline_name=f"the same at {size_a:,} records",
        baseline=Spread.of(cost_a),
        target=Target(
            "ratio", "<=", GROWTH_FLAT, f"flat: at {size_b:,} records <= {GROWTH_FLAT}x the cost at {size_a:,}"
        ),
        sizes={"size_a": size_a, "size_b": size_b},
        notes=notes,
        extra={"growth": {"what": what, "size_a": size_a, "size_b": size_b}},
    )
