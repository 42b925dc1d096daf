"""The gateway's settings: env prefix GATEWAY_ (plus the pipeline-wide names from PipelineSettings)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from contract.internal import InternalSecretSettings
from contract.settings import PipelineSettings
from services.gateway.origin import default_allowed_hosts


class GatewaySettings(PipelineSettings, InternalSecretSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Bind address; loopback only unless set.")
    port: int = Field(default=8000, ge=1, le=65535)
    generator_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8001"))
    merger_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8002"))

    connect_timeout_s: float = Field(default=1.0, gt=0, description="TCP connect to an upstream service.")
    status_timeout_s: float = Field(default=2.0, gt=0, description="Whole budget of one component probe.")
    command_timeout_s: float = Field(
        default=10.0, gt=0, description="start/stop/rate round trip (stop flushes in-flight events)."
    )
    stream_read_timeout_s: float = Field(default=30.0, gt=0, description="Max wait for one chunk of merged.csv.")
    max_downloads: int = Field(
        default=32, ge=1, description="Downloads relayed at once (own connection pool); the next one gets 503."
    )
    download_send_timeout_s: float = Field(
        default=30.0, gt=0, description="A download client that takes no data for this long is dropped."
    )
    status_cache_s: float = Field(
        default=0.5, ge=0, description="A /status snapshot younger than this is reused (dashboards poll)."
    )

    api_key: SecretStr | None = Field(default=None, description="When set, start/stop/rate require it.")
    protect_reads: bool = Field(default=False, description="Require the API key for read routes as well.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins; empty = CORS off."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the gateway answers to (DNS-rebinding guard), comma-separated; '*.x' matches "
        "subdomains, '*' turns the check off. Empty: localhost, 127.0.0.1, ::1 and the bound address.",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1, description="Larger request bodies get 413.")

    spark_stale_after_s: float = Field(
        default=60.0, gt=0, description="progress.json older than this while input waits = Spark stale."
    )
    spark_check_pid: bool = Field(
        default=True, description="Treat a 'running' progress whose driver pid is gone as Spark down (same host)."
    )
    spark_lag_warn_offsets: int = Field(
        default=100_000, ge=0, description="Spark further behind Kafka than this many offsets = degraded."
    )
    merger_lag_warn_batches: int = Field(default=10, ge=0, description="Merger further behind = degraded.")
    series_interval_s: float = Field(
        default=1.0, gt=0, description="How often the run's time series (gateway/series/<run>.jsonl) is sampled."
    )
    series_max_points: int = Field(
        default=3600, ge=10, description="Samples per run file; beyond it the file is thinned to every other one."
    )
    series_tail_s: float = Field(
        default=60.0,
        ge=0,
        description="Keep sampling a run this long after it ended, and until Spark and the merger drained it...",
    )
    series_max_drain_s: float = Field(
        default=600.0, ge=0, description="...and at most this long after it ended, drained or not."
    )
    series_max_runs: int = Field(default=100, ge=1, description="Run series kept (oldest deleted first).")
    report_timeout_s: float = Field(default=120.0, gt=0, description="Deadline to render GET /report.")
    freshness_warn_s: float = Field(
        default=10.0,
        gt=0,
        description="The merger's freshness (p99 over its window and the newest batch's last value) both above "
        "this = degraded. 10 s is ~7x the README's p99 target of 1.5 s at 1,000 events/s (the bench measures "
        "0.7 s): a busy machine or a short catch-up does not flap /status, a pipeline whose every batch takes "
        "seconds (a Kafka client waiting out timeouts) does.",
    )
    tail_max_rows: int = Field(default=200, ge=1)
    tail_window_bytes: int = Field(default=64 * 1024, ge=1024, description="Bytes fetched for /merged/tail.")

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, v: object) -> object:
        # GATEWAY_CORS_ORIGINS / GATEWAY_ALLOWED_HOSTS may be a JSON list or a comma-separated string.
        if isinstance(v, str) and not v.strip().startswith("["):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    def host_names(self) -> list[str]:
        return self.allowed_hosts or default_allowed_hosts(self.host)

    def generator_base(self) -> str:
        return str(self.generator_url).rstrip("/")

    def merger_base(self) -> str:
        return str(self.merger_url).rstrip("/")
