"""The plain-Spark baseline of the Spark stage, run with spark-submit: what Spark itself does with the
same records on the same cores, with none of the project's checks. The whole topic read as one batch
DataFrame (one task per Kafka partition), `from_json` with the explicit schema (spark_job.schema.
EVENT_SCHEMA), `posexplode` of data.devices, the same ten columns plus the Kafka keys written as CSV
(the sink's CSV options), no coalesce.

Warm (bench/spark_result.py): planned once, one warm-up pass, then `--passes` timed passes in the same
JVM, each from the read to its written folder. Prints one result line."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by spark-submit: import from the repo root
    _root = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(_root))

import shutil
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.spark_batch import passes_arg, read_whole_topic, timed_passes
from bench.spark_result import SparkPass
from spark_job.batch_files import CSV_OPTIONS
from spark_job.schema import EVENT_SCHEMA
from spark_job.session import build_session
from spark_job.settings import SparkJobSettings
from spark_job.transform import SPARK_EVENT_TIME_FORMAT


def plain_rows(df: DataFrame) -> DataFrame:
    events = df.select("partition", "offset", F.from_json(F.col("value").cast("string"), EVENT_SCHEMA).alias("e"))
    return events.select(
        "partition", "offset", "e.*", F.posexplode("e.data.devices").alias("deviceIndex", "reading")
    ).select(
        F.col("partition").alias("kafkaPartition"),
        F.col("offset").alias("kafkaOffset"),
        "eventId",
        "eventOffset",
        "eventPublisher",
        "customerId",
        F.date_format("eventTime", SPARK_EVENT_TIME_FORMAT).alias("eventTime"),
        "deviceIndex",
        "reading.deviceId",
        "reading.temperature",
        "reading.measure",
        "reading.status",
    )


def main() -> int:
    passes = passes_arg()
    settings = SparkJobSettings()
    spark = build_session(settings, app_name="devicestream-bench-plain")
    try:
        df = read_whole_topic(spark, settings)
        input_rows = df.count()
        rows = plain_rows(df)

        def one_pass(i: int) -> SparkPass:
            out = settings.layout.spark_dir / f"plain-{i}"
            t0 = time.perf_counter()
            rows.write.options(**CSV_OPTIONS).mode("overwrite").csv(str(out))
            seconds = time.perf_counter() - t0
            written = sum(p.stat().st_size for p in out.glob("part-*"))
            shutil.rmtree(out, ignore_errors=True)
            return SparkPass(seconds=seconds, input_rows=input_rows, bytes_out=written)

        timed_passes("spark_plain.py", df.rdd.getNumPartitions(), passes, one_pass)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
