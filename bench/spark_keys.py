"""The key stage's Spark script, run with spark-submit: the project's transform and sink as one batch
(like bench/spark_batch.py) over each topic named, in one JVM. Every topic is planned and given a
warm-up pass first; then the timed passes go round the topics (pass 1 of each, pass 2 of each, ...,
the order rotated each round), so neither the JVM's warming up nor a busy moment of the machine
favours one topic. Prints one result line (bench/spark_result.py) per topic, `script` being the
topic's name."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by spark-submit: import from the repo root
    _root = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(_root))

import argparse
import time

from pyspark.sql import DataFrame

from bench.spark_batch import read_whole_topic
from bench.spark_result import SparkPass, SparkRunResult
from spark_job import transform
from spark_job.job import make_sink
from spark_job.session import build_session
from spark_job.settings import SparkJobSettings
from spark_job.sink import BatchSink


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--topics", required=True, help="comma-separated topics, each timed on its own")
    p.add_argument("--passes", type=int, default=3, help="timed passes per topic after its warm-up pass")
    args = p.parse_args()
    topics = args.topics.split(",")
    base = SparkJobSettings()
    spark = build_session(base, app_name="devicestream-bench-keys")
    try:
        plans: dict[str, tuple[BatchSink, DataFrame, int]] = {}
        for topic in topics:
            # each topic its own data folder: the sink keeps the topic's identity there
            settings = SparkJobSettings(topic=topic, data_dir=base.data_dir / topic)
            df = read_whole_topic(spark, settings)
            plans[topic] = (make_sink(spark, settings, None), transform.screen(df), df.rdd.getNumPartitions())

        def one_pass(topic: str, batch_id: int) -> SparkPass:
            sink, screened, _tasks = plans[topic]
            t0 = time.perf_counter()
            counts = sink.write_batch(screened, batch_id)
            seconds = time.perf_counter() - t0
            return SparkPass(seconds=seconds, input_rows=counts.input_rows, rows_out=counts.rows_out)

        warmup = {topic: one_pass(topic, 0) for topic in topics}
        timed: dict[str, list[SparkPass]] = {topic: [] for topic in topics}
        for i in range(args.passes):
            k = i % len(topics)
            for topic in topics[k:] + topics[:k]:
                timed[topic].append(one_pass(topic, i + 1))
        for topic in topics:
            result = SparkRunResult(script=topic, tasks=plans[topic][2], warmup=warmup[topic], passes=timed[topic])
            print(result.line(), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
