"""Generator settings: env prefix GENERATOR_ (plus the shared pipeline settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contract.internal import InternalSecretSettings
from contract.settings import PipelineSettings
from services.generator.keys import PartitionKey


class GeneratorSettings(PipelineSettings, InternalSecretSettings):
    model_config = SettingsConfigDict(env_prefix="GENERATOR_", env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    max_rate: float = Field(default=200_000, gt=0, description="Highest rate (events/s) a run may ask for.")

    # Producer tuning (aiokafka). acks=all and idempotence are not settings: they are what makes
    # retries safe (nothing acknowledged is lost, nothing is written twice).
    linger_ms: int = Field(default=5, ge=0, description="How long a partly filled batch waits for more events.")
    max_batch_size: int = Field(default=256 * 1024, ge=1024, description="Bytes per partition batch.")
    # zstd (level 3): aiokafka compresses lz4 at level 9, which costs ~5x the CPU of zstd for a worse ratio.
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    request_timeout_ms: int = Field(default=30_000, ge=1000)
    retry_backoff_ms: int = Field(default=100, ge=1)

    # Flow control and state.
    max_in_flight_events: int = Field(
        default=200_000, ge=1, description="Events handed to the producer but not yet acknowledged, at most."
    )
    max_lag_s: float = Field(
        default=1.0, gt=0, description="How far behind schedule the run may fall before it stops catching up."
    )
    offset_block: int = Field(default=100_000, ge=1, description="eventOffsets reserved on disk per state write.")
    degraded_after_s: float = Field(
        default=3.0, gt=0, description="A batch unacknowledged this long marks the run degraded."
    )
    flush_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a stop (and shutdown) waits for in-flight events before it ends the run and reports "
        "what was not delivered. Keep it below the gateway's GATEWAY_COMMAND_TIMEOUT_S (10 s) so a stop through "
        "the gateway gets the generator's answer, not a 504.",
    )
    partition_key: PartitionKey = Field(
        default="customerId",
        description="The record key, which decides what Kafka keeps in order and how evenly the partitions are "
        "loaded: customerId (order per customer; 21 customers, so at most 21 busy partitions and one of 3 takes "
        "~48%), deviceId (order per device, for events whose first reading names it; events naming no device get "
        "a null key), none (null keys, records spread round robin over every partition; no order per key).",
    )
    keep_runs: int = Field(
        default=200,
        ge=1,
        description="Run ledgers kept in generator/runs/: a run's start removes the oldest past this many, the new "
        "one included (their `verify --run` and report are then gone; the gateway drops their series too).",
    )
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of the topic if the generator creates it.")
    create_topic: bool = Field(default=True, description="Create the topic when it does not exist.")
