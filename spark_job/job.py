"""The Spark job's main: `spark-submit [--master M] --jars <kafka connector jars> spark_job/job.py`.

Reads the events topic from Kafka, writes one committed rows file and one rejects file per
micro-batch (sink.BatchSink), keeps progress.json (progress.ProgressTracker), checkpoints in the
data folder. SIGTERM (or SIGINT) stops the query once the running batch is done and exits 0; a
failed query exits 1 with the error logged and in progress.json (state failed, lastError). A
checkpoint of a recreated topic (spark_job/topic_guard.py) exits EXIT_REFUSED (78) with its one line
as lastError: the launcher does not restart it until `devicestream reset-checkpoint` moved it aside.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import the packages from the repo, not spark_job/
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from contract.launcher import EXIT_REFUSED
from kafka_io.topic_identity import TopicIdentity
from service_kit.logs import configure_logging
from spark_job import checkpoint_reader, transform
from spark_job.progress import ProgressListener, ProgressTracker
from spark_job.session import build_session
from spark_job.settings import SparkJobSettings
from spark_job.sink import BatchSink
from spark_job.topic_guard import TopicChanged, TopicGuard

log = logging.getLogger("spark_job")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def checkpoint_has_batches(checkpoint: Path) -> bool:
    """Whether a previous run planned batches in this checkpoint (batch ids then continue)."""
    offsets = checkpoint / "offsets"
    return offsets.is_dir() and any(p.name.isdigit() for p in offsets.iterdir())


def make_guard(spark: SparkSession, settings: SparkJobSettings) -> TopicGuard:
    """The topic-id lookup (the source's Kafka configuration), checked against the checkpoint's record."""
    checkpoint = settings.checkpoint_dir
    identity = TopicIdentity(spark, settings.kafka_client_config, settings.topic)
    return TopicGuard(checkpoint, settings.topic, identity, lambda: checkpoint_has_batches(checkpoint))


def make_sink(
    spark: SparkSession, settings: SparkJobSettings, tracker: ProgressTracker | None, guard: TopicGuard | None = None
) -> BatchSink:
    checkpoint = settings.checkpoint_dir
    sink = BatchSink(
        settings.rows_dir,
        settings.rejects_dir,
        settings.layout.spark_dir / "_tmp",
        tracker.batch_committed if tracker is not None else None,
        lineage=lambda: checkpoint_reader.checkpoint_lineage(checkpoint),
        ranges=lambda batch_id: checkpoint_reader.batch_ranges(checkpoint, batch_id, settings.topic),
        topic=settings.topic,
        topic_id=guard or make_guard(spark, settings),
        single_task_below=settings.single_task_below,
        lineage_counter=settings.layout.spark_lineage_counter,
    )
    sink.prepare()
    return sink


def start_query(spark: SparkSession, settings: SparkJobSettings, sink: BatchSink) -> StreamingQuery:
    """Kafka -> screen -> foreachBatch(sink), checkpointed in the data folder. screen is applied
    here, once, to the streaming DataFrame: each micro-batch then only plans it (in the JVM)."""
    reader = (
        spark.readStream.format("kafka")
        .options(**settings.kafka_source_options)  # bootstrap servers, TLS / SASL (the admin client's too)
        .option("subscribe", settings.topic)
        # Only used when the checkpoint is new; afterwards the checkpoint's offsets win.
        .option("startingOffsets", settings.starting_offsets)
        # true: records deleted before they were read fail the query loudly (state failed).
        .option("failOnDataLoss", str(settings.fail_on_data_loss).lower())
    )
    if settings.max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
    # A big Kafka partition cut into several tasks (settings.min_partitions).
    min_partitions = settings.source_min_partitions(spark.sparkContext.defaultParallelism)
    reader = reader.option("minPartitions", str(min_partitions))
    settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    query = (
        reader.load()
        .transform(transform.screen)
        .writeStream.queryName(settings.query_name)
        .foreachBatch(sink)
        .option("checkpointLocation", str(settings.checkpoint_dir))
        .trigger(processingTime=settings.processing_time)
        .start()
    )
    log.info(
        "query started",
        extra={
            "query_id": str(query.id),
            "topic": settings.topic,
            "checkpoint": str(settings.checkpoint_dir),
            "trigger": settings.processing_time,
            "max_offsets_per_trigger": settings.max_offsets_per_trigger,
            "min_partitions": min_partitions,
        },
    )
    return query


class _JvmStopHandler:
    """A sun.misc.SignalHandler implemented in Python (py4j callback): replaces the JVM's own
    SIGTERM/SIGINT handler (which would run Spark's shutdown hooks and kill the running batch), so a
    signal to the whole process group stops the query gracefully too."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def handle(self, sig: Any) -> None:
        log.info("stop requested (JVM signal)", extra={"signal": sig.getName()})
        self._stop.set()

    class Java:
        implements = ["sun.misc.SignalHandler"]


def install_jvm_signal_handlers(spark: SparkSession, stop: threading.Event) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    handler = _JvmStopHandler(stop)
    for name in ("TERM", "INT"):
        try:
            jvm.sun.misc.Signal.handle(jvm.sun.misc.Signal(name), handler)
        except Exception:
            log.warning("cannot take over the JVM's SIG%s handler", name, exc_info=True)


def stop_gracefully(query: StreamingQuery, sink: BatchSink, timeout_s: float) -> None:
    """Wait until no batch is running (or `timeout_s`), then stop the query. Stopping mid-batch is
    still safe: the batch is re-run under the same id on the next start."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not sink.busy and not query.status.get("isTriggerActive", False):
            break
        time.sleep(0.05)
    else:
        log.warning("the running batch did not finish in time: stopping it", extra={"timeout_s": timeout_s})
    query.stop()
    log.info("query stopped", extra={"query_id": str(query.id)})


def run(settings: SparkJobSettings) -> int:
    tracker = ProgressTracker(settings.progress_file, resume_batches=checkpoint_has_batches(settings.checkpoint_dir))
    tracker.starting()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)

    spark: SparkSession | None = None
    query: StreamingQuery | None = None
    guard: TopicGuard | None = None
    try:
        spark = build_session(settings)
        install_jvm_signal_handlers(spark, stop)
        guard = make_guard(spark, settings)
        guard()  # a recreated topic is refused before Spark resumes from the old topic's offsets
        sink = make_sink(spark, settings, tracker, guard)
        spark.streams.addListener(ProgressListener(tracker, settings.query_name))
        if stop.is_set():
            log.info("stopped before the query started")
            tracker.stopped()
            return 0
        query = start_query(spark, settings, sink)
        tracker.running()
        while not query.awaitTermination(0.5):
            if stop.is_set():
                stop_gracefully(query, sink, settings.stop_timeout_s)
                break
        error = query.exception()
        if error is not None:
            raise error
        tracker.stopped()
        return 0
    except TopicChanged as e:
        return refuse(tracker, str(e))
    except StreamingQueryException as e:
        if guard is not None and guard.refusal:  # raised by the sink's ask, inside the batch
            return refuse(tracker, guard.refusal)
        log.exception("query failed")
        tracker.failed(str(e))
        return 1
    except Exception as e:
        log.exception("spark job failed")
        tracker.failed(f"{type(e).__name__}: {e}")
        return 1
    finally:
        if query is not None:
            try:
                query.stop()
            except Exception:
                log.warning("query.stop failed", exc_info=True)
        if spark is not None:
            spark.stop()


def refuse(tracker: ProgressTracker, line: str) -> int:
    """Fail with the one line (progress.json lastError) and EXIT_REFUSED: not restarted by the launcher."""
    log.error("refusing to run: %s", line)
    tracker.failed(line)
    return EXIT_REFUSED


def main() -> int:
    settings = SparkJobSettings()
    configure_logging("spark-job", settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
