"""Spark job: events/s of the real streaming job over a backlog vs plain Spark over the same records.

Streaming: `spark-submit spark_job/job.py` exactly as the launcher starts it (its default settings:
250 ms trigger, maxOffsetsPerTrigger 200,000), on a fresh checkpoint, the backlog already in Kafka.
rows/s = backlog / (time from the job's progress.json saying `running` to its totals.inputRows
reaching the backlog); JVM and session start-up are outside the timing, as in the batch run.
Baseline: bench/spark_plain.py, what Spark itself does with the same records on the same cores
(from_json with the explicit schema + posexplode + CSV, one task per Kafka partition, no checks),
as one batch over the whole topic, timed from the read to the written folder. Also reported: the
project's transform and sink as one batch (bench/spark_batch.py, BatchSink.write_batch), which
separates the cost of the checks from the cost of streaming. The event log of every run is kept in
results/profiles/spark-events (open it with the Spark history server)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import PY, Config, Figure, Spread, StageError, StageResult, Target, wait_until
from bench.data import write_payload_file
from bench.procs import Broker
from bench.stage_generator import producer_performance
from contract.progress import read_progress, read_progress_or_none
from devicestream.paths import REPO_ROOT, jars_dir
from devicestream.processes import log_tail, start_in_own_group, stop_process

RATIO_TARGET = 0.6


@dataclass(frozen=True)
class SparkSizes:
    events: int
    reps: int


FULL = SparkSizes(events=1_000_000, reps=1)  # one 1M-event run of each takes minutes on 2 cores
QUICK = SparkSizes(events=100_000, reps=1)


def spark_submit_argv(script: Path, event_log: Path) -> list[str]:
    jars = ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))
    event_log.mkdir(parents=True, exist_ok=True)
    return [
        str(REPO_ROOT / ".venv" / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        "1g",
        "--jars",
        jars,
        "--conf",
        "spark.ui.showConsoleProgress=false",
        "--conf",
        "spark.eventLog.enabled=true",
        "--conf",
        f"spark.eventLog.dir=file://{event_log.resolve()}",
        str(script),
    ]


def spark_env(broker: Broker, topic: str, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_TOPIC": topic,
        "DEVICESTREAM_DATA_DIR": str(data),
        "PYSPARK_PYTHON": PY,
        "PYSPARK_DRIVER_PYTHON": PY,
        "PYTHONUNBUFFERED": "1",
    }


#: What the report keeps of each batch the progress showed (written by alias: batchId, ...).
BATCH_FIELDS = {"batch_id", "num_input_rows", "batch_duration_ms", "updated_at"}


def streaming_run(broker: Broker, topic: str, data: Path, events: int, event_log: Path) -> tuple[float, dict]:
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log = data / "spark.log"
    progress = data / "spark" / "progress.json"
    argv = spark_submit_argv(REPO_ROOT / "spark_job" / "job.py", event_log)
    proc = start_in_own_group(argv, log, env=spark_env(broker, topic, data), cwd=REPO_ROOT)
    try:

        def state(want: str) -> bool:
            if proc.poll() is not None:
                raise StageError(f"the Spark job exited with {proc.returncode}:\n{log_tail(log)}")
            doc = read_progress_or_none(progress)
            if doc is not None and doc.state == "failed":
                raise StageError(f"the Spark job failed: {doc.last_error}")
            return doc is not None and doc.state == want

        wait_until(lambda: state("running"), 240, "the Spark job to start")
        t_running = time.time()
        batches: list[dict] = []

        def all_read() -> bool:
            state("running")
            doc = read_progress(progress)
            assert doc is not None
            if doc.batch_id is not None and (not batches or batches[-1]["batchId"] != doc.batch_id):
                batches.append(
                    doc.model_dump(include={"batch_id", "num_input_rows", "batch_duration_ms", "updated_at"})
                )
            return doc.totals.input_rows >= events

        wait_until(all_read, 900, f"the Spark job to read {events} records", interval_s=0.02)
        seconds = time.time() - t_running
        doc = read_progress(progress)
        assert doc is not None
        if doc.totals.input_rows != events:
            raise StageError(f"the Spark job read {doc.totals.input_rows} records, expected {events}")
        m = re.search(r"spark_version=(\S+)", log.read_text(errors="replace"))
        return seconds, {
            "totals": doc.totals.model_dump(),
            "batches": batches,
            "spark_version": m.group(1) if m else "?",
        }
    finally:
        stop_process(proc, timeout_s=40)


def batch_run(
    broker: Broker, topic: str, data: Path, events: int, event_log: Path, script: str = "spark_batch.py"
) -> tuple[float, dict]:
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    argv = spark_submit_argv(REPO_ROOT / "bench" / script, event_log)
    res = subprocess.run(
        argv, env=spark_env(broker, topic, data), cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if res.returncode != 0 or line is None:
        raise StageError(f"the batch run failed ({res.returncode}):\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}")
    doc = orjson.loads(line.removeprefix("BENCH_RESULT "))
    if doc["input_rows"] != events:
        raise StageError(f"the batch run read {doc['input_rows']} records, expected {events}")
    return float(doc["seconds"]), doc


def run(cfg: Config, broker: Broker, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("spark")
    work.mkdir(parents=True, exist_ok=True)
    payload = work / "payload.txt"
    mean = write_payload_file(payload)
    topic = broker.topic("bench-spark")
    producer_performance(broker, topic, sizes.events, payload)
    event_log = cfg.profiles / "spark-events"
    stream_rps: list[float] = []
    batch_rps: list[float] = []
    plain_rps: list[float] = []
    details: list[dict] = []
    for rep in range(sizes.reps):
        p, pinfo = batch_run(broker, topic, work / f"plain-{rep}", sizes.events, event_log, "spark_plain.py")
        plain_rps.append(sizes.events / p)
        s, info = streaming_run(broker, topic, work / f"stream-{rep}", sizes.events, event_log)
        stream_rps.append(sizes.events / s)
        b, binfo = batch_run(broker, topic, work / f"batch-{rep}", sizes.events, event_log)
        batch_rps.append(sizes.events / b)
        details.append({"plain_s": p, "stream_s": s, "batch_s": b, "plain": pinfo, "stream": info, "batch": binfo})
    batch, plain = Spread.of(batch_rps), Spread.of(plain_rps)
    fig = Figure(
        stage="spark",
        name="streaming over a backlog",
        unit="events/s",
        value=Spread.of(stream_rps),
        baseline_name="plain Spark: from_json (explicit schema) + posexplode + CSV, one task per Kafka partition",
        baseline=plain,
        target=Target("ratio", ">=", RATIO_TARGET, f"ratio >= {RATIO_TARGET}"),
        sizes={
            "backlog_events": sizes.events,
            "reps": sizes.reps,
            "mean_record_bytes": round(mean, 1),
            "rows_out": details[-1]["batch"]["rows_out"],
            "kafka_partitions": details[-1]["plain"].get("tasks"),
        },
        notes=[
            "spark-submit --master local[2] --driver-memory 1g, the job's defaults (trigger 250 ms, "
            "maxOffsetsPerTrigger 200,000); records: the generator's encoded events (ProducerPerformance "
            "--payload-file)",
            f"micro-batches of the last streaming run: {len(details[-1]['stream']['batches'])} seen; Spark "
            f"{details[-1]['stream']['spark_version']} (as the job reported it)",
            f"the project's transform and sink as one batch (bench/spark_batch.py): {batch.text()} events/s "
            f"({batch.median / plain.median:.2f} of plain Spark): the cost of the strict checks; "
            "the rest of the gap to the streaming figure is micro-batching",
            f"Spark event logs: {event_log}",
        ],
        extra={"runs": details},
    )
    if cfg.quick:
        fig.notes.append(f"quick mode: backlog of {sizes.events:,} events instead of 1,000,000")
    if not fig.met:
        fig.profile = str(event_log)
        fig.notes.append(_batch_overhead_note(details[-1]))
    res.figures.append(fig)
    return res


def _batch_overhead_note(d: dict) -> str:
    batches = d["stream"]["batches"]
    durs = [b["batchDurationMs"] for b in batches if b.get("batchDurationMs")]
    if not durs:
        return "no batch durations recorded"
    busy = sum(durs) / 1000
    return (
        f"streaming: {len(batches)} micro-batches seen, {busy:.1f} s inside batches of {d['stream_s']:.1f} s "
        f"wall; fixed cost per micro-batch (planning, the counts job, two file writes) is what the batch run "
        f"pays once"
    )
