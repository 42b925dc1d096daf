"""End to end on the whole stack (`devicestream up`, all components co-located on this machine):
freshness (eventTime -> row in merged.csv) at 1,000 and 20,000 events/s with where the time goes
(bench/e2e_phases.py), and the highest rate the pipeline sustains with bounded lag (a ladder of short
probes, then 5-minute runs down the passing rates until one holds, bench/e2e_confirm.py), against the
generator alone, with each component's CPU at that rate; at the end `devicestream verify` over
everything the stage sent."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.common import Config, Figure, Spread, StageError, StageResult, Target, wait_until
from bench.e2e_checks import cpu_shares, rss_figures, stack_cpu, verify_text
from bench.e2e_confirm import MAX_CONFIRMS, confirms_text, next_confirm_rate, profile_rate, sustained
from bench.e2e_phases import (
    batch_phases,
    committed_at,
    progress_events,
    row_phases,
    row_phases_text,
    spark_batches,
)
from bench.procs import py_spy
from bench.profiles import speedscope_top
from bench.stack import Stack, stack
from bench.tail import MergedTail
from contract.api import GeneratorStatus
from contract.merger_status import MergerStatus
from contract.progress import read_progress_or_none

if TYPE_CHECKING:
    from bench.ctx import RunContext

FRESH_RATE = 1_000.0
#: Issue #25's freshness targets: (rate, quantile, limit in s).
FRESH_TARGETS = ((FRESH_RATE, 0.5, 0.3), (FRESH_RATE, 0.99, 1.0), (20_000.0, 0.99, 2.0))
LAG_BOUND_S = 30.0  # the pipeline has caught up within this long after a run ends
MIN_ACHIEVED = 0.95  # the generator delivers at least this share of the asked rate
RATE_TARGET = 100_000.0
VERIFY_TIMEOUT_S = 900.0
DRAIN_LIMIT_S = 180.0  # after this, the stage reports what it saw (a slow pipeline is a finding, not an error)


@dataclass(frozen=True)
class E2ESizes:
    fresh_s: float
    warmup_s: float
    ladder: tuple[float, ...]
    probe_s: float
    confirm_s: float  # 0: no long confirmation run
    #: a run at the freshness rate before anything is measured: the JVMs' first batches (class
    #: loading, JIT) take seconds each, which says nothing about a pipeline that is up and running
    prime_s: float


FULL = E2ESizes(
    fresh_s=60,
    warmup_s=5,
    ladder=(10_000, 40_000, 60_000, 80_000, 100_000),  # (20,000/s: the freshness run)
    probe_s=30,
    confirm_s=300,
    # A micro-batch runs thousands of planning methods about once each, so the JIT reaches them
    # slowly: after 90 s at 1,000 events/s the Spark JVM's C2 compiler threads still used ~0.2 of a
    # core and a micro-batch ~170 ms; after 300 s, 110 ms and freshness p50 0.29 s instead of
    # ~0.36-0.48 s (scripts/freshness_probe.py, 2026-12-03). A running pipeline is that warm.
    prime_s=300,
)
QUICK = E2ESizes(fresh_s=12, warmup_s=3, ladder=(10_000, 60_000), probe_s=8, confirm_s=0, prime_s=10)


def trigger_s() -> float:
    """The Spark job's default trigger interval in seconds ("250 milliseconds" -> 0.25)."""
    from spark_job.settings import SparkJobSettings

    text = str(SparkJobSettings.model_fields["trigger_interval"].default).strip()
    number, _, unit = text.partition(" ")
    scale = {"millisecond": 0.001, "milliseconds": 0.001, "ms": 0.001, "second": 1.0, "seconds": 1.0, "": 1.0}
    return float(number) * scale[unit]


class Driver:
    """Runs the generator on the stack and watches the pipeline drain."""

    def __init__(self, st: Stack, tail: MergedTail) -> None:
        self.st = st
        self.tail = tail
        self.acked_total = 0
        self.requested: list[tuple[float, float, float]] = []  # (start, end, rate) seconds after t0
        #: peak RSS per component (bytes) since `new_window()`: one run and its drain
        self.window_rss: dict[str, int] = {}
        self._last_sample = 0.0

    def new_window(self) -> None:
        self.window_rss = {}

    def sample_rss(self) -> None:
        """At most once a second: each component's RSS into the stage's and the window's peaks."""
        if time.monotonic() - self._last_sample < 1.0:
            return
        self._last_sample = time.monotonic()
        for name, rss in self.st.sample_rss().items():
            self.window_rss[name] = max(self.window_rss.get(name, 0), rss)

    def window_rss_mb(self) -> dict[str, float]:
        return {k: round(v / 2**20) for k, v in sorted(self.window_rss.items())}

    def run(self, rate: float, duration_s: float) -> dict[str, Any]:
        gen = self.st.url("generator")
        t_start = time.time() - self.tail.t0
        # through the gateway: the generator takes control calls only with the stack's internal secret
        body = {"rate": rate, "duration_s": duration_s}
        r = httpx.post(f"{self.st.url('gateway')}/generator/start", json=body, timeout=10)
        if r.status_code != 202:
            raise StageError(f"POST /generator/start answered {r.status_code}: {r.text[:300]}")

        def done() -> GeneratorStatus | None:
            self.st.check_alive()
            self.sample_rss()
            s = GeneratorStatus.model_validate_json(httpx.get(f"{gen}/generator/status", timeout=5).content)
            return s if s.run is not None and s.run.state not in ("running", "degraded") else None

        s = wait_until(done, duration_s + 120, f"the generator run at {rate:,.0f}/s", interval_s=0.1)
        run = s.run
        assert run is not None
        if run.state != "completed" or run.ended_at is None:
            raise StageError(f"generator run ended {run.state}: {s.last_error}")
        self.requested.append((t_start, time.time() - self.tail.t0, rate))
        self.acked_total += s.acknowledged
        return {"acknowledged": s.acknowledged, "seconds": run.ended_at - run.started_at}

    def drain_s(self, limit_s: float) -> float:
        """Seconds until Spark has read every acknowledged event and the merger has merged every
        row Spark wrote (inf when not within `limit_s`)."""
        t0 = time.monotonic()
        merger = self.st.url("merger")
        progress = self.st.data / "spark" / "progress.json"

        def drained() -> bool:
            self.sample_rss()  # a backlog is worked off here: memory peaks can come after the run
            doc = read_progress_or_none(progress)
            if doc is None or doc.totals.input_rows < self.acked_total:
                return False
            m = MergerStatus.model_validate_json(httpx.get(f"{merger}/merger/status", timeout=5).content)
            return m.rows_merged >= doc.totals.rows_out

        try:
            wait_until(drained, limit_s, "the pipeline to drain", interval_s=0.05)
        except StageError:
            return math.inf
        return time.monotonic() - t0


def run(ctx: RunContext, work: Path) -> StageResult:
    cfg: Config = ctx.cfg
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("e2e")
    spark_conf = work / "spark-conf"
    spark_conf.mkdir(parents=True, exist_ok=True)
    events_dir = cfg.profiles / "spark-events-e2e"  # as shown in the report (like the other profiles)
    events_dir.mkdir(parents=True, exist_ok=True)
    (spark_conf / "spark-defaults.conf").write_text(
        f"spark.eventLog.enabled true\nspark.eventLog.dir file://{events_dir.resolve()}\n"
    )
    with stack(work / "data", stack_env(spark_conf)) as st:
        tail = MergedTail(st.data / "merger" / "merged.csv", t0=time.time())
        tail.start()
        try:
            drv = Driver(st, tail)
            drv.run(FRESH_RATE, sizes.prime_s)  # warm the JVMs up; measured windows start after it
            drv.drain_s(DRAIN_LIMIT_S)
            fresh = {rate: _freshness(drv, sizes, rate) for rate in dict.fromkeys(r for r, _, _ in FRESH_TARGETS)}
            # When it cannot keep up with the freshness runs, a faster probe would only pile up a backlog.
            lost = any(math.isinf(f["drain_s"]) for f in fresh.values())
            ladder, best = ([], 0.0) if lost else _ladder(drv, sizes)
            confirms = _confirm(drv, ladder, sizes.confirm_s) if sizes.confirm_s and best else []
            passed = sustained(best, confirms)
            failing = profile_rate(ladder + confirms, sizes.ladder[-1])
            profile = _profile_rate(drv, cfg, failing) if passed < RATE_TARGET and ladder else None
            merger_view = MergerStatus.model_validate_json(
                httpx.get(f"{st.url('merger')}/merger/status", timeout=5).content
            ).freshness.model_dump()
            verified = verify_text(st, VERIFY_TIMEOUT_S)
        finally:
            tail.stop()
        series = tail.timeline()
    series["rate_requested"] = [next((r for a, b, r in drv.requested if a <= t < b), 0.0) for t in series["t"]]
    res.series["freshness"] = series

    log_batches = spark_batches(work / "data" / "logs" / "spark.log")
    progress = progress_events(events_dir)
    journal = work / "data" / "merger" / "journal.jsonl"
    committed = committed_at(work / "data" / "logs")
    common_notes = [
        "stack: `devicestream up` (broker, Spark local[2], merger, generator, gateway) on free ports, "
        "temp data folder, all on this machine",
        "freshness = time the bench saw the row in merged.csv (20 ms polling) - the row's eventTime",
        f"Spark event log: {events_dir} (the phases above come from it; ~40 MB a full run, so git ignores it)",
        f"`devicestream verify` at the end, over every event of the stage: {verified}",
    ]
    quick_note = ["quick mode: short windows and a short rate probe, no 5-minute run"] if cfg.quick else []
    quick_note.append(f"measured after a {sizes.prime_s:.0f} s priming run at {FRESH_RATE:.0f} events/s (JVM warm-up)")
    trigger = trigger_s()
    for rate, q, lim in FRESH_TARGETS:
        fr = fresh[rate]
        t_from, t_to = fr["window"]
        (val, p50, p99), rows = tail.quantiles(t_from, t_to, (q, 0.5, 0.99))
        phases = row_phases(tail.kept, progress, committed, journal, tail.t0 + t_from, tail.t0 + t_to)
        name = f"p{round(q * 100)}"
        f = Figure(
            stage="e2e",
            name=f"freshness {name} @ {rate:,.0f}/s",
            unit="s",
            value=Spread.of([val]),
            baseline_name="Spark trigger interval",
            baseline=Spread.of([trigger]),
            target=Target("value", "<=", lim, f"{name} <= {lim} s"),
            sizes={"window_s": round(t_to - t_from, 1), "rows": rows, "rate": rate},
            notes=[
                f"at {rate:,.0f} events/s: p50 {p50:.3f} s, p99 {p99:.3f} s",
                row_phases_text(rate, phases),
                batch_phases(progress, tail.t0 + t_from, tail.t0 + t_to, trigger),
                f"drained {fr['drain_s']:.1f} s after the run ended (limit {DRAIN_LIMIT_S:.0f} s)",
                f"CPU cores used per component during the run: {fr['cpu_cores']}",
                *common_notes,
                f"the merger's own view at the end of the stage: {merger_view}",
                *quick_note,
                log_batches,
            ],
            extra={"phases": phases},
        )
        if not f.met:
            f.profile = str(events_dir)
        res.figures.append(f)

    baseline = ctx.shared.get("generator_events_per_s")
    base_note = "generator alone: the generator stage's throughput in this run"
    if baseline is None:
        baseline = _generator_alone(ctx)
        base_note = "generator alone: measured by this stage (generator stage not run)"
    held_for = f" for {sizes.confirm_s:.0f} s" if sizes.confirm_s else " (quick: short probes only)"
    held = next((p for p in confirms + ladder if p["ok"] and p["rate"] == passed), None)
    top = held or (confirms[0] if confirms else ladder[-1] if ladder else None)
    f = Figure(
        stage="e2e",
        name="highest sustained rate, bounded lag",
        unit="events/s",
        value=Spread.of([passed]),
        baseline_name="generator alone",
        baseline=baseline,
        target=Target("value", ">=", RATE_TARGET, f">= {RATE_TARGET:,.0f} events/s" + held_for),
        sizes={"ladder": list(sizes.ladder), "probe_s": sizes.probe_s, "confirm_s": sizes.confirm_s},
        notes=[
            *([cpu_shares(top)] if top else []),
            *common_notes,
            base_note,
            f"sustained = generator delivers >= {MIN_ACHIEVED:.0%} of the asked rate and the pipeline has merged "
            f"everything within {LAG_BOUND_S:.0f} s after the run ends"
            + (f"; confirmed by a {sizes.confirm_s:.0f} s run" if sizes.confirm_s else ""),
            *([confirms_text(confirms, sizes.confirm_s)] if sizes.confirm_s and ladder else []),
            "probes: "
            + "; ".join(
                f"{p['rate']:,.0f}/s for {p['seconds']:.0f} s {'ok' if p['ok'] else 'FAIL'} (achieved "
                f"{p['achieved']:,.0f}/s, drain {p['drain_s']:.1f} s, p99 {p['p99_last_half']:.2f} s)"
                for p in ladder + confirms
            ),
            *quick_note,
            *(["no rate probe: the pipeline did not merge a freshness run within the limit"] if not ladder else []),
        ],
        extra={"probes": ladder, "confirms": confirms, "cpu_cores_at_rate": top["cpu_cores"] if top else {}},
    )
    if profile:
        f.profile, summary = profile
        f.notes.append(summary)
    res.figures.append(f)
    stage_peak = {k: v / 2**20 for k, v in st.peak_rss.items()}
    res.figures.extend(rss_figures(held, top, fresh[FRESH_RATE], stage_peak))
    return res


def stack_env(spark_conf: Path) -> dict[str, str]:
    """The stack's environment for the stage: Spark's conf folder (its event log), no rate cap, and
    a merger journal that keeps every commit's line for the phase breakdown (not cut back)."""
    return {"SPARK_CONF_DIR": str(spark_conf), "GENERATOR_MAX_RATE": "1000000", "MERGER_JOURNAL_MAX_BYTES": str(2**30)}


def _freshness(drv: Driver, sizes: E2ESizes, rate: float) -> dict[str, Any]:
    """A run at `rate`; the window runs from the end of the warm-up until everything is merged (rows
    that arrive late count, with their full delay). The tail keeps the rows for the phase breakdown."""
    t_run = time.time() - drv.tail.t0
    drv.tail.keep_rows = True
    drv.new_window()
    cpu0, w0 = stack_cpu(drv.st), time.monotonic()
    drv.run(rate, sizes.fresh_s)
    cpu1, w1 = stack_cpu(drv.st), time.monotonic()
    drain = drv.drain_s(DRAIN_LIMIT_S)
    drv.tail.keep_rows = False
    if drv.tail.rows == 0:
        raise StageError(f"nothing reached merged.csv within {DRAIN_LIMIT_S:.0f} s of the {rate:,.0f} events/s run")
    t_end = time.time() - drv.tail.t0 + 1
    cpu = {k: round((cpu1.get(k, 0) - v) / (w1 - w0), 2) for k, v in cpu0.items()}
    return {
        "window": (t_run + sizes.warmup_s, t_end),
        "drain_s": drain,
        "cpu_cores": cpu,
        "peak_rss_mb": drv.window_rss_mb(),
    }


def _probe(drv: Driver, rate: float, seconds: float) -> dict[str, Any]:
    drv.new_window()
    cpu0, w0 = stack_cpu(drv.st), time.monotonic()
    t_run = time.time() - drv.tail.t0
    r = drv.run(rate, seconds)
    cpu1, w1 = stack_cpu(drv.st), time.monotonic()
    achieved = r["acknowledged"] / max(r["seconds"], 1e-9)
    drain = drv.drain_s(LAG_BOUND_S)
    if math.isinf(drain):
        drv.drain_s(DRAIN_LIMIT_S)  # let it catch up before the next probe
    (p99,), _ = drv.tail.quantiles(t_run + seconds / 2, time.time() - drv.tail.t0 + 1, (0.99,))
    ok = achieved >= MIN_ACHIEVED * rate and not math.isinf(drain)
    cpu = {k: round((cpu1.get(k, 0) - v) / (w1 - w0), 2) for k, v in cpu0.items()}
    return {
        "rate": rate,
        "seconds": seconds,
        "achieved": achieved,
        "drain_s": drain,
        "p99_last_half": p99,
        "ok": ok,
        "cpu_cores": cpu,
        "peak_rss_mb": drv.window_rss_mb(),
    }


def _ladder(drv: Driver, sizes: E2ESizes) -> tuple[list[dict], float]:
    probes: list[dict] = []
    best = 0.0
    for rate in sizes.ladder:
        p = _probe(drv, rate, sizes.probe_s)
        probes.append(p)
        if not p["ok"]:
            break
        best = rate
    return probes, best


def _confirm(drv: Driver, ladder: list[dict], seconds: float) -> list[dict]:
    """The long runs, down the rates that passed their probe until one holds for `seconds` (at most
    MAX_CONFIRMS of them; bench/e2e_confirm.py chooses the rates)."""
    passing = [p["rate"] for p in ladder if p["ok"]]
    confirms: list[dict] = []
    while (rate := next_confirm_rate(passing, [(c["rate"], c["ok"]) for c in confirms], MAX_CONFIRMS)) is not None:
        confirms.append(_probe(drv, rate, seconds))
    return confirms


def _profile_rate(drv: Driver, cfg: Config, rate: float) -> tuple[str, str]:
    """py-spy on the merger and the generator during a short run at the rate that failed."""
    pids = drv.st.component_pids()
    outs = []
    summaries = []
    seconds = 10.0
    with contextlib.ExitStack() as es:
        for name in ("merger", "generator"):
            if name in pids:
                out = cfg.profiles / f"e2e-{name}-{int(rate)}.speedscope.json"
                es.enter_context(py_spy(pids[name], out, seconds + 5))
                outs.append((name, out))
        drv.run(rate, seconds)
    drv.drain_s(300)
    for name, out in outs:
        summaries.append(f"{name}: {speedscope_top(out, top=4)}")
    return ", ".join(str(o) for _, o in outs), f"profiles at {rate:,.0f}/s: " + " | ".join(summaries)


def _generator_alone(ctx: RunContext) -> Spread:
    from bench import stage_generator

    return stage_generator.throughput_only(ctx.cfg, ctx.broker, ctx.work / "e2e-generator-alone")
