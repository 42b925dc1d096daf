"""The batch baseline of the Spark stage, run with spark-submit: the same transformation and the
same file writing as the streaming job (spark_job.transform.classify, then spark_job.sink.BatchSink.write_batch:
rows file with its counts, rejects file), over the whole topic read as one batch DataFrame. Prints one JSON line."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by spark-submit: import from the repo root
    _root = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(_root))

import time

import orjson
from pyspark.sql import DataFrame, SparkSession

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


def print_result(**fields: object) -> None:
    """The one line bench/stage_spark.py reads back."""
    print("BENCH_RESULT " + orjson.dumps(fields).decode(), flush=True)


def main() -> int:
    settings = SparkJobSettings()
    spark = build_session(settings, app_name="devicestream-bench-batch")
    try:
        sink = make_sink(spark, settings, None)
        t0 = time.perf_counter()
        df = read_whole_topic(spark, settings)
        counts = sink.write_batch(transform.classify(df), 0)
        seconds = time.perf_counter() - t0
        print_result(seconds=seconds, input_rows=counts.input_rows, rows_out=counts.rows_out)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
