"""Spark job: events/s of the real streaming job over a backlog vs plain Spark over the same records.

Every figure is warm (what a long-running job or a plain Spark user sees after its first batch):
- Streaming: `spark-submit spark_job/job.py` exactly as the launcher starts it (its default settings:
  150 ms trigger, maxOffsetsPerTrigger 200,000), on a fresh checkpoint, with the whole backlog
  already in Kafka: a warm-up backlog it reads first (class loading, codegen, JIT), then
  `grow_factor` timed windows of `events` records one after the other, median (as the baselines'
  passes: one window varied 0.58-0.73 of plain Spark between runs of the same code). A window's
  events/s = records read between the progress.json showing its start and the one showing its end,
  over the time between them (progress.json polled every 20 ms).
- Baseline: bench/spark_plain.py, what Spark itself does with the same records on the same cores
  (from_json with the explicit schema + posexplode + CSV, one task per Kafka partition, no checks),
  the whole topic as one batch, in its own JVM: a warm-up pass, then `passes` timed passes, median.
- Also reported: the project's transform and sink as one batch (bench/spark_batch.py,
  BatchSink.write_batch), timed the same way, which separates the cost of the checks from the cost
  of streaming.
The event log of every run is kept in results/profiles/spark-events (open it with the Spark history
server)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.common import Config, Figure, Spread, StageError, StageResult, Target, growth_figure, wait_until
from bench.data import write_payload_file
from bench.procs import Broker
from bench.spark_breakdown import (
    breakdown,
    event_log_batches,
    sink_batches,
    thread_cpu_seconds,
    thread_cpu_shares,
    tree_cpu_seconds,
)
from bench.spark_result import SparkRunResult
from bench.spark_submit import (
    BASELINE_DRIVER_MEMORY,
    job_driver_memory,
    run_spark_script,
    spark_env,
    spark_submit_argv,
)
from bench.stage_e2e import trigger_s
from bench.stage_generator import producer_performance
from contract.progress import SparkProgress, read_progress, read_progress_or_none
from devicestream.paths import REPO_ROOT
from devicestream.processes import log_tail, start_in_own_group, stop_process

RATIO_TARGET = 0.6


@dataclass(frozen=True)
class SparkSizes:
    events: int  # the timed backlog
    warmup_events: int  # the streaming job's warm-up backlog, read before the timed one (>= one batch)
    passes: int  # timed passes of each batch baseline, after its warm-up pass
    #: cost as work grows: the streaming job goes on over a backlog this many times `events` (the
    #: first `events` of it being the timed backlog), in a topic of its own
    grow_factor: int = 4

    @property
    def topic_events(self) -> int:
        return self.warmup_events + self.events

    @property
    def stream_topic_events(self) -> int:
        return self.warmup_events + self.events * self.grow_factor

    @property
    def window_ends(self) -> list[int]:
        """Where each timed window ends (records read): `grow_factor` windows of `events` records."""
        return [self.warmup_events + k * self.events for k in range(1, self.grow_factor + 1)]


FULL = SparkSizes(events=1_000_000, warmup_events=1_000_000, passes=3)
QUICK = SparkSizes(events=200_000, warmup_events=200_000, passes=3, grow_factor=3)


@dataclass(frozen=True)
class StreamingRun:
    events: int  # records read in the timed window
    seconds: float
    warmup_seconds: float  # from `running` to the warm-up backlog read
    # every batch progress.json showed: batchId, numInputRows, updatedAt, and seenAt (when the bench saw it)
    batches: list[dict]
    timed_batches: int
    totals: dict
    spark_version: str
    cpu_seconds: float  # CPU time of the job's processes (JVM, Python driver) in the timed window
    timed_ids: list[int]  # the ids of the timed micro-batches
    #: the whole grown backlog (sizes.grow_factor times `events`, from the same start): records, s, CPU s
    grown: tuple[int, float, float] = (0, 0.0, 0.0)
    warm_batches: int = 0  # the warm-up batches progress.json showed (before the timed ones)
    breakdown: str = ""  # where a timed micro-batch's time goes (bench/spark_breakdown.py)
    threads: str = ""  # the timed window's CPU by kind of thread (JIT, GC, tasks, the Python driver...)
    #: every timed window over the grown backlog, one after the other (the first is the one above):
    #: records, s, CPU s
    windows: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.cpu_seconds

    @property
    def window_rates(self) -> list[float]:
        """events/s of each timed window (the figure is their median, like the baselines' passes)."""
        return [n / s for n, s, _ in self.windows] or [self.events_per_s]

    @property
    def window_cpu_rates(self) -> list[float]:
        return [n / c for n, _, c in self.windows] or [self.events_per_cpu_s]


def streaming_run(broker: Broker, topic: str, data: Path, sizes: SparkSizes, event_log: Path) -> StreamingRun:
    """The job over the topic's warm-up backlog, then timed over the rest (module docstring)."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log = data / "spark.log"
    progress = data / "spark" / "progress.json"
    argv = spark_submit_argv(REPO_ROOT / "spark_job" / "job.py", event_log, job_driver_memory())
    proc = start_in_own_group(argv, log, env=spark_env(broker, topic, data), cwd=REPO_ROOT)
    try:

        def read_state(want: str) -> SparkProgress | None:
            if proc.poll() is not None:
                raise StageError(f"the Spark job exited with {proc.returncode}:\n{log_tail(log)}")
            doc = read_progress_or_none(progress)
            if doc is not None and doc.state == "failed":
                raise StageError(f"the Spark job failed: {doc.last_error}")
            return doc if doc is not None and doc.state == want else None

        wait_until(lambda: read_state("running"), 240, "the Spark job to start")
        t_running = time.time()
        batches: list[dict] = []
        marks: list[tuple[float, int, float]] = []  # (when seen, totals.inputRows, CPU s) at the window's ends
        threads: list[dict[str, float]] = []  # the CPU s of each kind of thread at the window's ends

        def read_until(rows: int) -> bool:
            doc = read_state("running")
            if doc is None:
                raise StageError("the Spark job left the running state")
            if doc.batch_id is not None and (not batches or batches[-1]["batchId"] != doc.batch_id):
                batches.append({**doc.model_dump(include=BATCH_FIELDS), "seenAt": time.time()})
            if doc.totals.input_rows >= rows:
                marks.append((time.time(), doc.totals.input_rows, tree_cpu_seconds(proc.pid)))
                threads.append(thread_cpu_seconds(proc.pid))
                return True
            return False

        what = "the Spark job to read its warm-up backlog"
        wait_until(lambda: read_until(sizes.warmup_events), 900, what, interval_s=0.02)
        warm_batches = len(batches)
        timed_batches = 0
        for k, target in enumerate(sizes.window_ends):
            what = f"the Spark job to read {sizes.events:,} more records (timed window {k + 1})"
            wait_until(lambda target=target: read_until(target), 900, what, 0.02)
            if k == 0:
                timed_batches = len(batches) - warm_batches
        # (each mark is at or past its window's end: read_until takes one only then)
        (t0, rows0, cpu0), (t1, rows1, cpu1), (t2, rows2, cpu2) = marks[0], marks[1], marks[-1]
        if rows2 != sizes.stream_topic_events:
            raise StageError(f"the Spark job read {rows2} records, expected {sizes.stream_topic_events}")
        # (a window's ends fall on micro-batch ends: one that held only the last few records of the
        # backlog says nothing about the rate, so windows under half the size are left out)
        windows = [(b[1] - a[1], b[0] - a[0], b[2] - a[2]) for a, b in itertools.pairwise(marks)]
        windows = [w for w in windows if w[0] >= sizes.events / 2 and w[1] > 0]
        doc = read_progress(progress)
        assert doc is not None
        text = log.read_text(errors="replace")
        m = re.search(r"spark_version=(\S+)", text)
        # (polled: one may be missing in between)
        timed = [b["batchId"] for b in batches[warm_batches : warm_batches + timed_batches]]
        run = StreamingRun(
            events=rows1 - rows0,
            seconds=t1 - t0,
            warmup_seconds=t0 - t_running,
            batches=batches,
            timed_batches=timed_batches,
            totals=doc.totals.model_dump(),
            spark_version=m.group(1) if m else "?",
            cpu_seconds=cpu1 - cpu0,
            threads=thread_cpu_shares(threads[0], threads[1]),
            timed_ids=list(range(timed[0], timed[-1] + 1)) if timed else [],
            grown=(rows2 - rows0, t2 - t0, cpu2 - cpu0),
            warm_batches=warm_batches,
            windows=windows,
        )
    finally:
        stop_process(proc, timeout_s=40)  # (Spark writes the rest of its event log as it stops)
    per_batch = breakdown(sink_batches(log.read_text(errors="replace")), event_log_batches(event_log), run.timed_ids)
    return replace(run, breakdown=per_batch)


#: What the report keeps of each batch the progress showed (written by alias: batchId, ...).
#: (Not batchDurationMs: the listener writes it after the commit, so it can still be the previous batch's.)
BATCH_FIELDS = {"batch_id", "num_input_rows", "updated_at"}


def batch_run(
    broker: Broker, topic: str, data: Path, sizes: SparkSizes, event_log: Path, script: str
) -> SparkRunResult:
    """bench/<script> in its own JVM: a warm-up pass, then sizes.passes timed passes (spark_result.py)."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    argv = [*spark_submit_argv(REPO_ROOT / "bench" / script, event_log), "--passes", str(sizes.passes)]
    doc = run_spark_script(script, argv, spark_env(broker, topic, data), 1800, SparkRunResult.from_stdout)
    if doc.input_rows != sizes.topic_events:
        raise StageError(f"{script} read {doc.input_rows} records, expected {sizes.topic_events}")
    return doc


def run(cfg: Config, broker: Broker, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("spark")
    work.mkdir(parents=True, exist_ok=True)
    payload = work / "payload.txt"
    mean = write_payload_file(payload)
    topic = broker.topic("bench-spark")
    producer_performance(broker, topic, sizes.topic_events, payload)
    stream_topic = broker.topic("bench-spark-stream")  # the same records, and more (cost as work grows)
    producer_performance(broker, stream_topic, sizes.stream_topic_events, payload)
    event_log = cfg.profiles / "spark-events"
    load_at_start = os.getloadavg()
    plain = batch_run(broker, topic, work / "plain", sizes, event_log / "plain", "spark_plain.py")
    stream = streaming_run(broker, stream_topic, work / "stream", sizes, event_log / "stream")
    batch = batch_run(broker, topic, work / "batch", sizes, event_log / "batch", "spark_batch.py")
    load_at_end = os.getloadavg()
    plain_spread, batch_spread = Spread.of(plain.rates), Spread.of(batch.rates)
    timed = stream.batches[stream.warm_batches : stream.warm_batches + stream.timed_batches]
    fig = Figure(
        stage="spark",
        name="streaming over a backlog, warm",
        unit="events/s",
        value=Spread.of(stream.window_rates),
        baseline_name="plain Spark, warm: from_json (explicit schema) + posexplode + CSV, one task per Kafka "
        "partition, median of the timed passes",
        baseline=plain_spread,
        target=Target("ratio", ">=", RATIO_TARGET, f"ratio >= {RATIO_TARGET}"),
        sizes={
            "timed_backlog_events": stream.events,
            "warmup_backlog_events": sizes.warmup_events,
            "baseline_passes": sizes.passes,
            "baseline_pass_events": plain.input_rows,
            "mean_record_bytes": round(mean, 1),
            "rows_out_per_pass": batch.passes[-1].rows_out,
            "kafka_partitions": plain.tasks,
        },
        notes=[
            f"method, streaming job: spark-submit spark_job/job.py --master local[2] --driver-memory "
            f"{job_driver_memory()} (the launcher's), the job's defaults (trigger {trigger_s() * 1000:.0f} ms, "
            "maxOffsetsPerTrigger 200,000, a task per Kafka partition as plain Spark; SPARK_JOB_MIN_PARTITIONS "
            f"from the environment, if set), fresh checkpoint; it reads a {sizes.warmup_events:,}-record warm-up "
            f"backlog first ({stream.warmup_seconds:.1f} s, JVM start "
            f"excluded), then is timed over {len(stream.windows)} windows of {sizes.events:,} records one after "
            f"the other, median (the first: {stream.timed_batches} micro-batches, {stream.seconds:.1f} s; "
            f"each window's records at events/s: {_windows_text(stream.windows)}); the whole backlog was in "
            "Kafka before it started",
            f"method, baselines: each script in its own JVM (spark-submit, same flags but --driver-memory "
            f"{BASELINE_DRIVER_MEMORY}), the DataFrame planned "
            f"once, one warm-up pass ({plain.warmup.events_per_s:,.0f} events/s for plain Spark), then "
            f"{sizes.passes} timed passes over the whole topic ({plain.input_rows:,} records), median; "
            "Spark's defaults otherwise (no shuffle in either job, so nothing else in Spark's tuning guide "
            "applies)",
            "records: the generator's encoded events (ProducerPerformance --payload-file, no keys)",
            f"the project's transform and sink as one batch (bench/spark_batch.py, BatchSink.write_batch, "
            f"warm the same way): {batch_spread.text()} events/s ({batch_spread.median / plain_spread.median:.2f} "
            "of plain Spark): the cost of the strict checks; the rest of the gap to the streaming figure "
            "is micro-batching",
            "timed micro-batches (records, ms since the previous one was seen): "
            + _batch_times(stream.batches, timed, stream.warm_batches),
            f"where the time goes, {stream.breakdown}",
            f"the streaming job's CPU in the timed window by kind of thread (/proc, outside the tasks too): "
            f"{stream.threads}",
            f"load average (1, 5, 15 min) at the stage's start {_load(load_at_start)}, at its end "
            f"{_load(load_at_end)} on {os.cpu_count()} cores: wall-time figures above ~{os.cpu_count()} are "
            "mostly the other processes'; the CPU figure below is much less sensitive to them",
            f"Spark {stream.spark_version} (as the job reported it); event logs: {event_log}",
        ],
        extra={"plain": plain.model_dump(), "batch": batch.model_dump(), "stream": asdict(stream)},
    )
    if cfg.quick:
        fig.notes.append(f"quick mode: {sizes.events:,}-event timed backlog instead of {FULL.events:,}")
    if not fig.met:
        fig.profile = str(event_log)
    res.figures.append(fig)
    res.figures.append(cpu_figure(stream, plain, batch))
    n_b, s_b, cpu_b = stream.grown
    res.figures.append(
        growth_figure(
            "spark",
            "streaming job over a backlog",
            stream.events,
            [stream.cpu_seconds / stream.events * 1e6],
            n_b,
            [cpu_b / n_b * 1e6],
            [
                f"one streaming run (topic of its own: the warm-up backlog, then {n_b:,} records): A = its first "
                f"{stream.events:,} timed records (the figure above), B = all {n_b:,} from the same start; wall "
                f"time per record {stream.seconds / stream.events * 1e6:.1f} us at A, {s_b / n_b * 1e6:.1f} us at "
                "B; CPU = the job's process tree (JVM, Python driver)",
            ],
        )
    )
    return res


def cpu_figure(stream: StreamingRun, plain: SparkRunResult, batch: SparkRunResult) -> Figure:
    """Records per CPU second (user + system of every process of the run: JVM threads, GC, JIT, the
    Python driver): what a record costs, whatever else the machine runs at the time."""
    plain_cpu, batch_cpu = Spread.of(plain.cpu_rates), Spread.of(batch.cpu_rates)
    return Figure(
        stage="spark",
        name="streaming over a backlog, CPU per record",
        unit="events/CPU-s",
        value=Spread.of(stream.window_cpu_rates),
        baseline_name="plain Spark, the same passes as above",
        baseline=plain_cpu,
        target=Target("ratio", ">=", RATIO_TARGET, f"ratio >= {RATIO_TARGET} (CPU; the issue's is the wall time)"),
        notes=[
            f"streaming: median of the timed windows (each {stream.events:,} records; the first took "
            f"{stream.cpu_seconds:,.1f} CPU s); the job's "
            f"transform and sink as one batch: {batch_cpu.text()} events/CPU-s "
            f"({batch_cpu.median / plain_cpu.median:.2f} of plain Spark)",
            "on 2 idle cores wall time is about CPU time / 2 plus what no core does: tasks waiting for a free "
            "core (3 Kafka partitions on 2 cores), the driver planning and committing between batches",
        ],
    )


def _windows_text(windows: list[tuple[int, float, float]]) -> str:
    return ", ".join(f"{n:,} at {n / t:,.0f}" for n, t, _ in windows)


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


def _batch_times(batches: list[dict], timed: list[dict], first: int) -> str:
    """ "<records> in <ms>" for each timed batch: the time between the bench seeing it and seeing the one
    before it (the batches follow each other at once over a backlog)."""
    seen = [b["seenAt"] for b in batches]
    return ", ".join(
        f"{b['numInputRows']:,} in {(b['seenAt'] - seen[first + i - 1]) * 1000:,.0f}"
        for i, b in enumerate(timed)
        if first + i > 0
    )
