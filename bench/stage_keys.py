"""The record key (GENERATOR_PARTITION_KEY) against partition skew and Spark throughput.

For each partition count (3, 12) and each key setting (customerId, deviceId, none), a topic gets a
backlog made exactly as the generator makes it: its encoder keyed by the setting, its batching
(services/generator/batching.py) placing each record with keys.KeyPartitioner. Reported per topic:
- the skew: the largest partition's share of the backlog. A micro-batch reads every partition's
  new records up to maxOffsetsPerTrigger, shared out in proportion to each partition's backlog
  (Spark's Kafka source), so that is also the largest task's share of every batch: the batch takes
  at least that share of its work in one task, whatever the cores (1 / share: the most cores a
  batch can use);
- Spark's throughput: the project's transform and sink as one batch over the whole topic
  (bench/spark_keys.py, all topics in one JVM, each warm, the timed passes taken round the topics),
  one task per Kafka partition, against the customerId key on the same partition count.
On the bench machine's 2 cores (local[2]) a 48% task costs little (the other core has 52% of the
work), so the Spark figures show the skew only once partitions outnumber the cores' share."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.common import Config, Figure, Spread, StageError, StageResult, Target
from bench.procs import Broker
from bench.spark_result import SparkRunResult
from bench.spark_submit import run_spark_script, spark_env, spark_submit_argv
from contract.kafka import KafkaSecurity
from devicestream.paths import REPO_ROOT
from kafka_io.admin import end_offsets
from kafka_io.clients import aiokafka_options
from services.generator.batching import Batches
from services.generator.events import EventClock, EventEncoder
from services.generator.keys import KeyPartitioner, PartitionKey

PARTITION_COUNTS = (3, 12)
KEYS: tuple[PartitionKey, ...] = ("customerId", "deviceId", "none")
#: a key's Spark throughput against the customerId key's on the same partitions: no slower
RATIO_TARGET = 0.9


@dataclass(frozen=True)
class KeySizes:
    events: int  # per topic
    passes: int  # timed Spark passes per topic, after its warm-up pass


FULL = KeySizes(events=300_000, passes=3)
QUICK = KeySizes(events=30_000, passes=1)


@dataclass(frozen=True)
class Backlog:
    partitions: int
    key_by: PartitionKey
    counts: dict[int, int]  # records per partition
    rate: float  # events/s it was made at


def largest_share(counts: Mapping[int, int]) -> float:
    """The largest partition's share of the records (0 when there are none)."""
    total = sum(counts.values())
    return max(counts.values()) / total if total else 0.0


async def produce_keyed(
    bootstrap: str, security: KafkaSecurity, topic: str, events: int, key_by: PartitionKey, seed: int = 8
) -> float:
    """`events` events into `topic` as the generator makes and places them; returns events/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",  # the generator's default
        max_batch_size=256 * 1024,
        **aiokafka_options(security),
    )
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        batches = Batches(producer.create_batch, KeyPartitioner(len(parts)), lambda: 0)
        enc, clock, rng = EventEncoder(key_by), EventClock(), random.Random(seed)
        futures = []
        t0 = time.perf_counter()
        for i in range(events):
            batches.put(*enc.encode(rng, clock.now(), 10_000 + i))
            last = i == events - 1
            if last or i % 2000 == 1999:
                for b in batches.ready(time.monotonic(), float("inf"), everything=last):
                    futures.append(await producer.send_batch(b.builder, topic, partition=b.partition))
        await asyncio.gather(*futures)
        return events / (time.perf_counter() - t0)
    finally:
        await producer.stop()


def spark_over(
    broker: Broker, topics: list[str], work: Path, sizes: KeySizes, event_log: Path
) -> dict[str, SparkRunResult]:
    """bench/spark_keys.py over `topics` in one JVM: each topic's result."""
    argv = [
        *spark_submit_argv(REPO_ROOT / "bench" / "spark_keys.py", event_log),
        "--topics",
        ",".join(topics),
        "--passes",
        str(sizes.passes),
    ]
    work.mkdir(parents=True, exist_ok=True)

    def every_topic(stdout: str) -> dict[str, SparkRunResult] | None:
        got = {d.script: d for d in SparkRunResult.all_from_stdout(stdout)}
        return got if set(got) == set(topics) else None

    by_topic = run_spark_script("spark_keys.py", argv, spark_env(broker, topics[0], work), 3600, every_topic)
    for topic, doc in by_topic.items():
        if doc.input_rows != sizes.events:
            raise StageError(f"spark_keys.py read {doc.input_rows} records of {topic}, expected {sizes.events}")
    return by_topic


def run(cfg: Config, broker: Broker, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("keys")
    made: dict[str, Backlog] = {}
    for n in PARTITION_COUNTS:
        for key_by in KEYS:
            topic = broker.topic(f"bench-keys-{key_by.lower()}-{n}", partitions=n)
            rate = asyncio.run(produce_keyed(broker.bootstrap, broker.security, topic, sizes.events, key_by))
            counts = asyncio.run(end_offsets(broker.bootstrap, topic, broker.security, timeout_s=30))
            made[topic] = Backlog(n, key_by, counts, rate)
    spark = spark_over(broker, list(made), work, sizes, cfg.profiles / "spark-events")
    base_of = {b.partitions: spark[t] for t, b in made.items() if b.key_by == "customerId"}
    for topic, b in made.items():
        n, key_by, counts, rate = b.partitions, b.key_by, b.counts, b.rate
        share = largest_share(counts)
        sizes_doc = {
            "events": sizes.events,
            "partitions": n,
            "busy_partitions": sum(1 for c in counts.values() if c),
            "records_per_partition": [counts[p] for p in sorted(counts)],
        }
        res.figures.append(
            Figure(
                stage="keys",
                name=f"largest partition's share, key {key_by}, {n} partitions",
                unit="% of records",
                value=Spread.of([100 * share]),
                baseline_name=f"even: 1/{n}",
                baseline=Spread.of([100 / n]),
                target=Target("value", "<=", round(150 / n, 1), f"<= 1.5/{n} (a task at most 1.5x an even share)"),
                ratio_inverted=True,
                sizes=sizes_doc,
                notes=[
                    f"every micro-batch's largest task has this share of its records: at most "
                    f"{1 / share:.1f} cores are of use to a batch"
                    if share
                    else "no records",
                    f"made as the generator makes them (its encoder and batching), {rate:,.0f} events/s into Kafka",
                ],
            )
        )
        doc, base = spark[topic], base_of[n]
        res.figures.append(
            Figure(
                stage="keys",
                name=f"Spark transform+sink, key {key_by}, {n} partitions",
                unit="events/s",
                value=Spread.of(doc.rates),
                baseline_name=f"key customerId, {n} partitions",
                baseline=Spread.of(base.rates),
                target=Target("ratio", ">=", RATIO_TARGET, f"ratio >= {RATIO_TARGET}"),
                sizes={**sizes_doc, "tasks": doc.tasks, "passes": sizes.passes},
                notes=[
                    "bench/spark_keys.py: spark_job.transform.screen + BatchSink.write_batch over the whole "
                    f"topic, local[2], one task per Kafka partition; every topic warmed up first, then "
                    f"{sizes.passes} timed pass(es) of each, taken round the topics",
                    f"largest task's share {100 * share:.1f}% of the records",
                ],
                extra={"spark": doc.model_dump()},
            )
        )
    return res
