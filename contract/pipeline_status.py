"""GET /status of the gateway: the whole pipeline in one document. The gateway builds it
(services/gateway/health.py: the rules); the dashboard, tests/e2e and tests/gateway read it with this model.

Each component's entry carries the gateway's verdict (`status`, `reasons`) and what the gateway saw
(reachable, url...); the generator's and the merger's own documents (/generator/status,
/merger/status) are passed through next to them, as the fields of `GeneratorHealth` and
`MergerHealth` (their models' fields, typed; only those the service sent are in the JSON).
Spark's progress.json is passed through as extra fields of `SparkHealth` (read them with
`SparkHealth.progress()`). The document itself allows extra fields: a newer gateway may add some."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.api import GeneratorState, GeneratorStatus
from contract.merger_status import MergerStatus
from contract.progress import SparkProgress

Level = Literal["ok", "degraded", "down"]


class ComponentHealth(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Level
    reasons: list[str] = []


class KafkaHealth(ComponentHealth):
    reachable: bool
    bootstrap: str
    brokers: int = 0
    topic: str
    topic_exists: bool = False
    partitions: int = 0
    end_offsets: dict[str, int] = Field(default_factory=dict, description="End offset per partition.")
    total_events: int | None = Field(default=None, description="Sum of the end offsets; null when unreachable.")
    error: str | None = None
    latency_ms: float | None = None


class ServiceHealth(ComponentHealth):
    """The generator or the merger: its status document's fields, and how the gateway reached it."""

    reachable: bool
    url: str
    error: str | None = None


class GeneratorHealth(ServiceHealth, GeneratorStatus):
    """The generator's entry: the verdict, how the gateway reached it, and /generator/status's fields
    (none of them when it did not answer: `state` is then None)."""

    model_config = ConfigDict(extra="forbid")

    state: GeneratorState | None = None  # (None: the generator did not answer)


class MergerHealth(ServiceHealth, MergerStatus):
    """The merger's entry: the verdict, how the gateway reached it, and /merger/status's fields (their
    defaults when it did not answer)."""

    model_config = ConfigDict(extra="forbid")


class SparkHealth(ComponentHealth):
    """progress.json's fields, and what the gateway made of them. `age_s`, `stale` and `pid_alive`
    are there only when there is a progress file."""

    progress_file: str
    present: bool
    pending_input: int | None = Field(default=None, description="Events in Kafka that Spark has not read yet.")
    age_s: float | None = None
    stale: bool | None = None
    pid_alive: bool | None = Field(default=None, description="null: not checked.")

    def progress(self) -> SparkProgress:
        """progress.json's fields as Spark wrote them (its defaults when there is no file)."""
        return SparkProgress.model_validate(self.model_extra or {})


class Components(BaseModel):
    model_config = ConfigDict(extra="allow")

    kafka: KafkaHealth
    generator: GeneratorHealth
    spark: SparkHealth
    merger: MergerHealth


class Accounting(BaseModel):
    model_config = ConfigDict(extra="allow")

    events_in_kafka: int | None = None
    generator_acknowledged: int | None = None
    spark_input_rows: int | None = None
    spark_rows_out: int | None = None
    spark_rejects: int | None = None
    spark_events_without_readings: int | None = None
    rows_merged: int | None = None
    drained: bool = False
    consistent: bool | None = None
    notes: list[str] = []


class Lag(BaseModel):
    model_config = ConfigDict(extra="allow")

    kafka_offsets_behind: int | None = None
    merger_batches_behind: int | None = None
    end_to_end_s: float | None = None
    end_to_end_p99_s: float | None = None
    spark_progress_age_s: float | None = None


class PipelineStatus(BaseModel):
    """GET /status."""

    model_config = ConfigDict(extra="allow")

    overall: Level
    reasons: list[str]
    checked_at: float
    components: Components
    accounting: Accounting
    lag: Lag = Field(default_factory=Lag)
