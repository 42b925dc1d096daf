"""The metric names are part of the API (dashboards, bench, README)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.generator.metrics import Metrics


def test_metric_names() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = {m.name for m in registry.collect()}
    assert names - PROCESS_METRICS == {
        "generator_events_sent",
        "generator_events_acknowledged",
        "generator_events_invalid",
        "generator_delivery_errors",
        "generator_events_found_written",
        "generator_producer_replacements",
        "generator_send_latency_seconds",
        "generator_rate_events_per_second",
        "generator_target_rate_events_per_second",
        "generator_events_in_flight",
        "generator_kafka_connected",
    }
    assert names >= PROCESS_METRICS


#: prometheus-client's ProcessCollector (Linux): process_start_time_seconds is the restart alert's.
PROCESS_METRICS = {
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds",
    "process_open_fds",
    "process_max_fds",
}
