"""Prometheus metrics of one gateway app (its own CollectorRegistry, never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from contract.pipeline_status import ComponentHealth, PipelineStatus

COMPONENTS = ("kafka", "generator", "spark", "merger")
_LEVEL = {"ok": 0, "degraded": 1, "down": 2}


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests", "HTTP requests answered by the gateway", ["method", "route", "status"], registry=r
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Upstream calls that failed", ["component", "error"], registry=r
        )
        self.status_build = Histogram("gateway_status_build_seconds", "Time to build one /status snapshot", registry=r)
        self.up = Gauge("devicestream_component_up", "1 when the component is not down", ["component"], registry=r)
        self.health = Gauge("devicestream_component_health", "0 ok, 1 degraded, 2 down", ["component"], registry=r)
        self.overall = Gauge("devicestream_overall_health", "0 ok, 1 degraded, 2 down", registry=r)
        self.e2e_lag = Gauge(
            "devicestream_end_to_end_lag_seconds",
            "Time from an event's eventTime to its row being merged (merger freshness, last value)",
            registry=r,
        )
        self.offsets_behind = Gauge(
            "devicestream_kafka_offsets_behind", "Events in Kafka that Spark has not read yet", registry=r
        )
        self.batches_behind = Gauge(
            "devicestream_merger_batches_behind", "Batch files the merger has not merged yet", registry=r
        )
        # A gauge (the gateway re-reads the figures): not *_total nor *_count, suffixes of counters and histograms.
        self.stage_count = Gauge(
            "devicestream_stage_records", "Cumulative count at each stage of the pipeline", ["stage"], registry=r
        )
        self.download_refusals = Counter(
            "gateway_download_refusals", "Downloads refused with 503: GATEWAY_MAX_DOWNLOADS were running", registry=r
        )
        self.spark_started_at = Gauge(
            "devicestream_spark_started_at_seconds",
            "progress.json's startedAt (changes when Spark restarts)",
            registry=r,
        )
        ProcessCollector(registry=r)  # process_start_time_seconds: the restart alert watches it

    def observe_status(self, doc: PipelineStatus) -> None:
        for name in COMPONENTS:
            component: ComponentHealth = getattr(doc.components, name)
            self.up.labels(name).set(0 if component.status == "down" else 1)
            self.health.labels(name).set(_LEVEL[component.status])
        self.overall.set(_LEVEL[doc.overall])
        for gauge, value in (
            (self.e2e_lag, doc.lag.end_to_end_s),
            (self.offsets_behind, doc.lag.kafka_offsets_behind),
            (self.batches_behind, doc.lag.merger_batches_behind),
        ):
            gauge.set(float(value) if value is not None else float("nan"))
        for stage in ("events_in_kafka", "spark_input_rows", "spark_rows_out", "spark_rejects", "rows_merged"):
            value = getattr(doc.accounting, stage)
            self.stage_count.labels(stage).set(float(value) if value is not None else float("nan"))
        started = doc.components.spark.progress().started_at  # passed through from progress.json
        self.spark_started_at.set(float(started) if isinstance(started, int | float) else float("nan"))
