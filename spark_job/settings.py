"""Settings of the Spark job: env prefix SPARK_JOB_, plus the shared pipeline settings and SPARK_MASTER."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from contract.settings import PipelineSettings
from kafka_io.java import java_client_config

#: SPARK_JOB_MIN_PARTITIONS' default, per core (see its description).
TASKS_PER_CORE: Final = 4


class SparkJobSettings(PipelineSettings):
    model_config = SettingsConfigDict(env_prefix="SPARK_JOB_", env_file=".env", extra="ignore", frozen=True)

    master: str = Field(
        default="local[2]",
        validation_alias=AliasChoices("SPARK_MASTER", "master"),
        description="Spark master URL (local[2], spark://host:7077, ...). Under spark-submit, --master wins.",
    )
    # 150 ms: at 1,000 events/s a warm micro-batch takes ~110-150 ms, so batches run nearly back to
    # back and a record waits about half a batch for its own. Measured with scripts/freshness_probe.py
    # (2026-12-04, 300 s priming, 60 s window): 200 ms gave p50 0.344 s (p99 0.653), 150 ms 0.251 s
    # (p99 0.488), for the same Spark CPU (0.73-0.74 cores: the batches got cheaper as they got more
    # frequent). 250 ms gave 0.30-0.33 s before (~0.13 core less than 200 ms). Larger batches take
    # longer than any of these, so higher rates do not see it.
    trigger_interval: str = Field(
        default="150 milliseconds",
        description='Micro-batch trigger interval ("1 second", "250 milliseconds"); "0" = as fast as possible. A '
        "batch that takes longer than this is followed at once by the next; an idle topic is polled this often.",
    )
    max_offsets_per_trigger: int | None = Field(
        default=200_000,
        gt=0,
        description="At most this many Kafka records per micro-batch (bounds a batch after a backlog).",
    )
    min_partitions: int = Field(
        default=1,
        ge=0,
        description="The Kafka source's minPartitions: a micro-batch's Kafka partitions are cut into about this many "
        "Spark tasks (a big partition into several, each a contiguous offset range). 1: one task per Kafka partition "
        "(Spark's default). Measured on 2 cores (bench spark stage): 8 made 200k-record batches slower (the split "
        "tasks wait on their own Kafka fetches), although it spreads the CPU evenly. 0: 4 per core. A batch is still "
        "one rows file whose manifest holds each Kafka partition's range.",
    )
    single_task_below: int = Field(
        default=20_000,
        ge=0,
        description="A micro-batch of fewer records than this is parsed and written by one Spark task (one task's "
        "fixed cost: low latency for small, frequent batches); larger ones by one task per Kafka partition (on 2 "
        "cores one task is faster up to ~15,000 records, measured warm). Either "
        "way Spark's CSV writer streams the rows to files (nothing is collected into the driver). 0 = always one "
        "task per Kafka partition.",
    )
    starting_offsets: str = Field(
        default="earliest",
        description="Where the very first start reads from (ignored once a checkpoint exists).",
    )
    fail_on_data_loss: bool = Field(
        default=True,
        description="Fail the query (state failed, lastError) when offsets it needs were deleted (retention, "
        "topic recreated). False skips them with only a Spark warning: records would be lost silently.",
    )
    shuffle_partitions: int = Field(default=2, gt=0, description="spark.sql.shuffle.partitions.")
    driver_memory: str = Field(
        default="768m",
        description="spark.driver.memory when the job starts its own JVM (not under spark-submit; the launcher's "
        "is DEVICESTREAM_SPARK_DRIVER_MEMORY, the same default).",
    )
    jars: str = Field(
        default="",
        description="Comma-separated connector jars for spark.jars when not passed by spark-submit --jars.",
    )
    ui_enabled: bool = Field(default=False, description="Start the Spark web UI.")
    spark_log_level: str = Field(default="WARN", description="Log level of Spark's own (JVM) logging.")
    log_level: str = Field(default="INFO", description="Log level of the job's Python logging.")
    query_name: str = Field(default="devicestream", description="Name of the streaming query.")
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="On SIGTERM, how long to wait for the running batch before stopping anyway."
    )

    @field_validator("trigger_interval")
    @classmethod
    def _interval_not_blank(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("trigger_interval must not be empty (use 0 for as fast as possible)")
        return v

    def source_min_partitions(self, cores: int) -> int:
        """The Kafka source's minPartitions for a job on `cores` cores (Spark's defaultParallelism)."""
        return self.min_partitions or TASKS_PER_CORE * max(cores, 1)

    @property
    def processing_time(self) -> str:
        """The trigger interval as Spark's processingTime string ("0 seconds" for as fast as possible)."""
        return "0 seconds" if self.trigger_interval in ("0", "0s", "0 seconds") else self.trigger_interval

    @property
    def kafka_client_config(self) -> dict[str, str]:
        """The Kafka Java client configuration of every JVM-side client of the job (the Kafka source,
        the topic-identity admin client): bootstrap servers plus TLS / SASL, from one place."""
        return {"bootstrap.servers": self.require_bootstrap(), **java_client_config(self.kafka_security)}

    @property
    def kafka_source_options(self) -> dict[str, str]:
        """`kafka_client_config` as the Kafka source's `kafka.*` options."""
        return {f"kafka.{k}": v for k, v in self.kafka_client_config.items()}

    @property
    def checkpoint_dir(self) -> Path:
        return self.layout.spark_checkpoint

    @property
    def rows_dir(self) -> Path:
        return self.layout.spark_rows

    @property
    def rejects_dir(self) -> Path:
        return self.layout.spark_rejects

    @property
    def progress_file(self) -> Path:
        return self.layout.spark_progress
