"""Where a streaming micro-batch's time goes, and what the Spark runs cost in CPU (bench/stage_spark.py).

Three sources, all written by the runs themselves:
- the job's "batch committed" log lines (spark_job/sink.py): before the Spark job (prepare_ms), the
  Spark job that parses, classifies, formats and writes the rows and takes the counts (spark_ms), and
  the commit (fsync, renames: commit_ms);
- Spark's event log: per micro-batch its jobs' tasks (records each, time each, executor CPU each: how
  evenly the cores were kept busy, how skewed the Kafka partitions were), and the query progress
  phases outside the sink (planning, offsets, the offset and commit logs);
- process CPU time (psutil): CPU seconds per record do not depend on what else runs on the machine
  the way wall time does (7 engineers share its 2 cores), so the report gives both."""

from __future__ import annotations

import heapq
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import cramjam
import orjson
import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its live descendants (0 for one that is gone)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the live threads of process `pid` and its descendants, summed by kind of thread:
    "<process name>: <thread name without its number>" (e.g. "java: C2 CompilerThre", "java: GC Thread",
    "java: Executor task l", "python: python"; Linux keeps 15 characters of a thread's name). Where the
    job's CPU goes outside its tasks (JIT compilers, GC, the Python driver...), which the event log does
    not show. A thread that ends between two snapshots takes its CPU time with it."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for p in procs:
        try:
            pname = p.name()
            tids = os.listdir(f"/proc/{p.pid}/task")
        except (psutil.NoSuchProcess, OSError):
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{p.pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            key = f"{pname}: {thread_kind(stat[stat.index('(') + 1 : stat.rindex(')')])}"
            fields = stat[stat.rindex(")") + 2 :].split()
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def thread_kind(name: str) -> str:
    """A thread's name without its number ("C2 CompilerThread1" -> "C2 CompilerThread", "GC Thread#3")."""
    return re.sub(r"[\s#-]*\d+$", "", name) or name


def thread_cpu_shares(before: dict[str, float], after: dict[str, float], top: int = 8) -> str:
    """The CPU seconds each kind of thread used between two `thread_cpu_seconds` snapshots, biggest
    first, with its share of the total."""
    used = {k: v - before.get(k, 0.0) for k, v in after.items()}
    used = {k: v for k, v in used.items() if v > 0}
    total = sum(used.values())
    if total <= 0:
        return "no CPU time measured"
    ranked = sorted(used.items(), key=lambda kv: -kv[1])
    return f"{total:,.1f} CPU s: " + ", ".join(f"{k} {v:,.1f} s ({v / total:.0%})" for k, v in ranked[:top])


@dataclass(frozen=True)
class SinkBatch:
    """One "batch committed" line of the job's log."""

    batch_id: int
    input_rows: int
    path: str
    prepare_ms: int
    spark_ms: int
    commit_ms: int


_COMMITTED = re.compile(
    r"batch committed batch_id=(\d+) .*?input_rows=(\d+) .*?path=(one task|per partition)(?:, strict)? .*?"
    r"prepare_ms=(\d+) spark_ms=(\d+) commit_ms=(\d+)"
)


def sink_batches(log_text: str) -> list[SinkBatch]:
    return [
        SinkBatch(int(m[1]), int(m[2]), m[3], int(m[4]), int(m[5]), int(m[6])) for m in _COMMITTED.finditer(log_text)
    ]


@dataclass(frozen=True)
class Task:
    records: int
    run_ms: int
    cpu_ms: float
    gc_ms: int
    kafka_partition_order: int  # the task's index in its stage


@dataclass(frozen=True)
class EventLogBatch:
    """One micro-batch as Spark's event log shows it: the tasks of its jobs and the progress phases."""

    batch_id: int
    jobs_wall_ms: int
    tasks: list[Task]
    phases: dict[str, int]

    @property
    def task_cpu_ms(self) -> float:
        return sum(t.cpu_ms for t in self.tasks)

    @property
    def reading_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.records > 0]


def _events(folder: Path) -> list[dict]:
    out: list[dict] = []
    for path in sorted(folder.rglob("events_*")):
        raw = path.read_bytes()
        if path.suffix == ".zstd":
            raw = bytes(cramjam.zstd.decompress(raw))
        out += [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    return out


def event_log_batches(folder: Path) -> dict[int, EventLogBatch]:
    """Every micro-batch of the streaming runs logged under `folder`, by batch id (the last run's)."""
    stage_batch: dict[int, int] = {}
    walls: dict[int, int] = {}
    starts: dict[int, tuple[int, int]] = {}
    tasks: dict[int, list[Task]] = {}
    phases: dict[int, dict[str, int]] = {}
    for e in _events(folder):
        kind = e["Event"]
        if kind == "SparkListenerJobStart":
            batch = (e.get("Properties") or {}).get("streaming.sql.batchId")
            if batch is not None:
                for s in e["Stage IDs"]:
                    stage_batch[s] = int(batch)
                starts[e["Job ID"]] = (int(batch), e["Submission Time"])
        elif kind == "SparkListenerJobEnd" and e["Job ID"] in starts:
            batch, t0 = starts.pop(e["Job ID"])
            walls[batch] = walls.get(batch, 0) + e["Completion Time"] - t0
        elif kind == "SparkListenerTaskEnd" and e["Stage ID"] in stage_batch:
            m = e.get("Task Metrics") or {}
            tasks.setdefault(stage_batch[e["Stage ID"]], []).append(
                Task(
                    records=(m.get("Input Metrics") or {}).get("Records Read", 0),
                    run_ms=m.get("Executor Run Time", 0),
                    cpu_ms=m.get("Executor CPU Time", 0) / 1e6,
                    gc_ms=m.get("JVM GC Time", 0),
                    kafka_partition_order=e["Task Info"]["Index"],
                )
            )
        elif kind.endswith("QueryProgressEvent"):
            p = e["progress"]
            phases[int(p["batchId"])] = dict(p["durationMs"])
    return {b: EventLogBatch(b, walls.get(b, 0), tasks.get(b, []), phases.get(b, {})) for b in phases}


def makespan(task_ms: list[float], cores: int) -> float:
    """How long tasks of these durations take on `cores` cores, each started in order on the first
    core free (how Spark's local scheduler hands them out)."""
    free = [0.0] * cores
    for ms in task_ms:
        heapq.heappush(free, heapq.heappop(free) + ms)
    return max(free)


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def breakdown(sink: list[SinkBatch], logged: dict[int, EventLogBatch], batch_ids: list[int], cores: int = 2) -> str:
    """One sentence per source: the medians over the micro-batches `batch_ids` (the timed ones)."""
    timed = [b for b in sink if b.batch_id in batch_ids]
    ev = [logged[b] for b in batch_ids if b in logged]
    if not timed or not ev:
        return "per batch: no timed batch in the job's log or the event log"
    phase = {k: _med([b.phases.get(k, 0) for b in ev]) for k in ("triggerExecution", "addBatch", "queryPlanning")}
    outside = phase["triggerExecution"] - phase["addBatch"] - phase["queryPlanning"]
    reading = [b.reading_tasks for b in ev]
    per_task = [t.records for ts in reading for t in ts]
    skew = _med([max(t.records for t in ts) / max(1, sum(t.records for t in ts)) for ts in reading if ts])
    cpu = _med([b.task_cpu_ms for b in ev])
    wall = _med([b.jobs_wall_ms for b in ev])
    longest = _med([max((t.run_ms for t in b.tasks), default=0) for b in ev])
    gc = _med([sum(t.gc_ms for t in b.tasks) for b in ev])
    by_order = [[t.cpu_ms for t in sorted(b.tasks, key=lambda t: t.kafka_partition_order)] for b in ev]
    # the tasks' CPU time laid out on idle cores, over a perfect split: how evenly they can keep the cores busy
    balance = _med([makespan(ts, cores) / (sum(ts) / cores) for ts in by_order if sum(ts) > 0])
    return (
        f"per timed micro-batch (median of {len(timed)}; {_med([b.input_rows for b in timed]):,.0f} records): "
        f"trigger {phase['triggerExecution']:,.0f} ms = query planning {phase['queryPlanning']:,.0f} + offsets, "
        f"offset and commit logs {outside:,.0f} + the sink {phase['addBatch']:,.0f} ms; the sink = before the "
        f"Spark job {_med([b.prepare_ms for b in timed]):,.0f} + the Spark job (parse, classify, CSV formatting, "
        f"write, counts: one pass) {_med([b.spark_ms for b in timed]):,.0f} + commit (fsync, renames) "
        f"{_med([b.commit_ms for b in timed]):,.0f} ms. In that Spark job: {_med([len(ts) for ts in reading]):.0f} "
        f"reading tasks ({min(per_task, default=0):,}..{max(per_task, default=0):,} records each; the biggest "
        f"Kafka input split holds {skew:.0%} of the batch), jobs' wall {wall:,.0f} ms, executor CPU {cpu:,.0f} ms "
        f"in all (so {cpu / max(wall, 1):.2f} cores busy on average), longest task {longest:,.0f} ms, "
        f"GC {gc:,.0f} ms; on {cores} idle cores these tasks would take {balance:.2f} x their CPU time / {cores} "
        "(1.00: the split keeps every core busy; 3 equal Kafka partitions on 2 cores: 1.33)"
    )
