"""The launcher's settings (prefix DEVICESTREAM_), plus the component ports it hands to each child."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from contract.settings import PipelineSettings

ALL_COMPONENTS = ("kafka", "spark", "merger", "generator", "gateway")


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class LauncherSettings(PipelineSettings):
    model_config = SettingsConfigDict(env_prefix="DEVICESTREAM_", env_file=".env", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface every local component binds to.")
    components: str = Field(
        ",".join(ALL_COMPONENTS),
        description="Comma-separated components to start (kafka is skipped when KAFKA_BOOTSTRAP_SERVERS is set).",
    )
    kafka_port: int = Field(9092, description="Embedded broker port (brokers N use consecutive pairs).")
    kafka_controller_port: int = Field(9093, description="Embedded controller port.")
    kafka_heap: str = Field("512m", description="Heap of each embedded broker JVM.")
    kafka_secure: bool = Field(
        False,
        description="Embedded broker on SASL_SSL only (SCRAM-SHA-512; CA, certificate and password made into "
        "<data>/kafka/security) and every component connected with it (also: devicestream up --secure).",
    )
    brokers: int = Field(1, ge=1, le=5, description="Embedded brokers (3 gives replication factor 3).")
    topic_partitions: int = Field(
        3,
        ge=1,
        description="Partitions of the events topic when it is created (also: devicestream up --partitions N); an "
        "existing topic keeps its own. Each is one Spark task per micro-batch: more than 21 is useless with "
        "GENERATOR_PARTITION_KEY=customerId (21 customers).",
    )
    topic_retention_bytes: int = Field(
        1024**3,
        ge=1024 * 1024,
        description="Kafka retention.bytes of the events topic, per partition (the oldest segments are deleted "
        "beyond it; retention by time stays 7 days).",
    )
    topic_segment_bytes: int = Field(
        64 * 1024**2,
        ge=1024 * 1024,
        description="Kafka segment.bytes of the events topic: retention deletes whole segments, so a partition "
        "holds at most retention + one segment.",
    )
    spark_master: str = Field(
        "local[2]", validation_alias=_alias("SPARK_MASTER"), description="Spark master URL for the job."
    )
    spark_driver_memory: str = Field(
        "768m",
        description="spark-submit --driver-memory: the Spark JVM's heap (in local mode the tasks run in it too). "
        "The process tree takes ~400 MB of native memory (metaspace, code, GC, threads) and ~150 MB for the "
        "Python driver on top, and G1 keeps what it has grown to: 768m keeps the whole at most ~1.35 GB; the "
        "job's live heap at 100,000 events/s is well under it (README: Benchmarks).",
    )
    spark_driver_java_options: str = Field(
        "",
        description="More JVM options for the Spark driver (spark.driver.defaultJavaOptions, e.g. "
        "-XX:StartFlightRecording=... to profile it; a spark-defaults.conf's spark.driver.extraJavaOptions "
        "still apply, after these). Empty: the JVM's defaults.",
    )
    generator_port: int = Field(8001, validation_alias=_alias("GENERATOR_PORT"))
    merger_port: int = Field(8002, validation_alias=_alias("MERGER_PORT"))
    gateway_port: int = Field(8000, validation_alias=_alias("GATEWAY_PORT"))
    ready_timeout_s: float = Field(120.0, gt=0, description="Deadline for each component to become ready.")
    spark_ready_timeout_s: float = Field(240.0, gt=0, description="Deadline for the Spark job to start.")
    stop_timeout_s: float = Field(30.0, gt=0, description="Grace period after SIGTERM before SIGKILL.")
    restart_backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between restarts.")
    unready_restart_s: float = Field(
        60.0,
        gt=0,
        description="A component alive but failing its readiness probe (/readyz) this long is restarted.",
    )
    log_max_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Size at which a component's log in logs/ is rotated."
    )
    log_backups: int = Field(3, ge=0, description="Rotated logs kept per component (<name>.log.1 .. .N).")

    def component_list(self) -> list[str]:
        wanted = [c.strip() for c in self.components.split(",") if c.strip()]
        unknown = sorted(set(wanted) - set(ALL_COMPONENTS))
        if unknown:
            raise ValueError(f"DEVICESTREAM_COMPONENTS names unknown components {unknown}; known: {ALL_COMPONENTS}")
        return [c for c in ALL_COMPONENTS if c in wanted]
