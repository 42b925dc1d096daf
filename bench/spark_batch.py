"""The batch baseline of the Spark stage, run with spark-submit: the same transformation and the
same file writing as the streaming job (spark_job.transform.screen, then spark_job.sink.BatchSink.write_batch:
rows file with its counts, rejects file), over the whole topic read as one batch DataFrame.

Warm, like the plain baseline (bench/spark_result.py): screen is planned once, then one warm-up
pass and `--passes` timed passes, each a write_batch of its own batch id. Prints one result line."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by spark-submit: import from the repo root
    _root = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(_root))

import argparse
import os
import time
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession

from bench.spark_breakdown import tree_cpu_seconds
from bench.spark_result import SparkPass, SparkRunResult
from spark_job import transform
from spark_job.job import make_sink
from spark_job.session import build_session
from spark_job.settings import SparkJobSettings


def read_whole_topic(spark: SparkSession, settings: SparkJobSettings) -> DataFrame:
    """The topic from its earliest to its latest offsets, as one batch DataFrame (a partition per
    Kafka partition)."""
    return (
        spark.read.format("kafka")
        .options(**settings.kafka_source_options)  # the job's own Kafka configuration, TLS / SASL included
        .option("subscribe", settings.topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )


def passes_arg(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--passes", type=int, default=3, help="timed passes after the warm-up pass")
    return p.parse_args(argv).passes


def jvm_cpu_seconds() -> float:
    """CPU seconds so far of this driver's JVM (spark-submit starts the Python driver as its child) and
    its children: every thread of it (tasks, GC, JIT, Kafka clients) and the Python driver."""
    return tree_cpu_seconds(os.getppid())


def timed_passes(script: str, tasks: int, passes: int, one_pass: Callable[[int], SparkPass]) -> SparkRunResult:
    """`one_pass(i)` for i = 0 (the warm-up) .. passes, in this JVM, each given its CPU time; prints
    and returns the result."""

    def measured(i: int) -> SparkPass:
        cpu0 = jvm_cpu_seconds()
        done = one_pass(i)
        return done.model_copy(update={"cpu_seconds": jvm_cpu_seconds() - cpu0})

    warmup, *timed = (measured(i) for i in range(passes + 1))
    result = SparkRunResult(script=script, tasks=tasks, warmup=warmup, passes=timed)
    print(result.line(), flush=True)
    return result


def main() -> int:
    passes = passes_arg()
    settings = SparkJobSettings()
    spark = build_session(settings, app_name="devicestream-bench-batch")
    try:
        sink = make_sink(spark, settings, None)
        df = read_whole_topic(spark, settings)
        screened = transform.screen(df)  # planned once, as the streaming job does

        def one_pass(batch_id: int) -> SparkPass:
            t0 = time.perf_counter()
            counts = sink.write_batch(screened, batch_id)
            seconds = time.perf_counter() - t0
            return SparkPass(seconds=seconds, input_rows=counts.input_rows, rows_out=counts.rows_out)

        timed_passes("spark_batch.py", df.rdd.getNumPartitions(), passes, one_pass)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
