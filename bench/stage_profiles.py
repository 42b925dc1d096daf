"""Generator rate profiles: each profile's achieved rate per 1 s window against its curve.

Each profile runs in the real generator service (over its REST API) into its own topic; the
records' Kafka CreateTime (stamped by the producer as it takes each) is counted per 1 s window
from the run's first record, and compared with the curve's integral over that window. The figure
per profile is the worst window's achieved/requested ratio (target: within +-2%)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from pydantic import TypeAdapter

from bench.common import Config, Figure, Spread, StageResult, Target
from bench.procs import Broker
from bench.stage_generator import _timestamps, generator_on, run_and_wait
from contract.generator_options import Profile
from services.generator.profiles import Curve, curve_of

PROFILES: dict[str, dict] = {
    "constant": {"kind": "constant", "rate": 20_000},
    "ramp": {"kind": "ramp", "from_rate": 2_000, "to_rate": 20_000, "over_s": 8},
    "steps": {
        "kind": "steps",
        "steps": [
            {"rate": 5_000, "duration_s": 3},
            {"rate": 20_000, "duration_s": 3},
            {"rate": 10_000, "duration_s": 4},
        ],
    },
    "burst": {"kind": "burst", "base_rate": 5_000, "burst_rate": 20_000, "burst_s": 2, "period_s": 4},
    "sine": {"kind": "sine", "mean": 12_000, "amplitude": 8_000, "period_s": 6},
}


def schedule_offset_ms(ts: list[int], curve: Curve, sample: int = 97) -> float:
    """How much later than its schedule the run's records were stamped, as the median over a
    sample of records of (CreateTime of record k - first CreateTime - the time the curve schedules
    event k at): the start-up latency between the run's t = 0 and its first record's stamp."""
    t0 = ts[0]
    gaps = []
    for k in range(0, len(ts), sample):
        at = curve.time_of(k, 0.0)
        if at is not None:
            gaps.append(ts[k] - t0 - at * 1000)
    return statistics.median(gaps) if gaps else 0.0


def window_ratios(timestamps_ms: list[int], profile: dict, seconds: int) -> tuple[list[tuple[int, int, float]], float]:
    """(window start s, records stamped in [s, s+1) of the curve's time, requested records) per
    window, skipping the first (connection warm-up) and the last (the run's end); and the
    start-up offset used to put the records on the curve's time."""
    curve = curve_of(TypeAdapter(Profile).validate_python(profile))
    ts = sorted(timestamps_ms)
    offset = schedule_offset_ms(ts, curve)
    t0 = ts[0] + offset
    counts = [0] * (seconds + 2)
    for t in ts:
        k = int((t - t0) // 1000)
        if 0 <= k < len(counts):
            counts[k] += 1
    return [(k, counts[k], curve.integral(k + 1) - curve.integral(k)) for k in range(1, seconds - 1)], offset


def run(cfg: Config, broker: Broker, work: Path) -> StageResult:
    seconds = 8 if cfg.quick else 16
    res = StageResult("profiles")

    for name, profile in PROFILES.items():
        topic = broker.topic(f"bench-profile-{name}")
        with generator_on(broker, work, topic) as gen:
            st = run_and_wait(gen, {"profile": profile, "duration_s": seconds, "seed": 1}, timeout_s=seconds + 120)
        ts = asyncio.run(_timestamps(broker.bootstrap, topic, st.acknowledged))
        windows, offset = window_ratios(ts, profile, seconds)
        worst = max(windows, key=lambda w: abs(w[1] / w[2] - 1))
        res.figures.append(
            Figure(
                stage="profiles",
                name=f"profile {name}: worst 1 s window",
                unit="events/s",
                value=Spread.of([worst[1]]),
                baseline_name="the curve's integral over that window",
                baseline=Spread.of([worst[2]]),
                target=Target("ratio", "within", 0.02, "every 1 s window within +-2% of the curve"),
                sizes={"seconds": seconds, "windows": len(windows), "profile": profile},
                notes=[
                    f"records put on the curve's time {offset:.0f} ms after the first record's CreateTime "
                    "(the median lateness of a sample of records against their schedule: start-up latency)",
                    f"window {worst[0]}-{worst[0] + 1} s; per window (achieved, requested): "
                    + ", ".join(f"{n}/{want:.0f}" for _, n, want in windows),
                ],
            )
        )
    return res
