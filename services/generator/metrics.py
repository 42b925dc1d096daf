"""The generator's Prometheus metrics (names are part of the API: dashboards and bench read them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.sent = Counter("generator_events_sent", "Records handed to the Kafka producer.", registry=registry)
        self.acknowledged = Counter(
            "generator_events_acknowledged", "Records acknowledged by Kafka (acks=all).", registry=registry
        )
        self.invalid = Counter("generator_events_invalid", "Deliberately malformed records sent.", registry=registry)
        self.delivery_errors = Counter(
            "generator_delivery_errors",
            "Records whose delivery attempt failed (they are sent again).",
            registry=registry,
        )
        self.found_written = Counter(
            "generator_events_found_written",
            "Records of a failed delivery found in Kafka already: counted as delivered, not sent again.",
            registry=registry,
        )
        self.producer_replacements = Counter(
            "generator_producer_replacements",
            "Kafka producers replaced (sender dead, or sequence numbers out of step with the broker).",
            registry=registry,
        )
        self.send_latency = Histogram(
            "generator_send_latency_seconds",
            "From handing a batch to the producer to its acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.rate = Gauge(
            "generator_rate_events_per_second", "Acknowledged events/s over the last 1 s.", registry=registry
        )
        self.target_rate = Gauge("generator_target_rate_events_per_second", "The active run's rate.", registry=registry)
        self.in_flight = Gauge(
            "generator_events_in_flight", "Records sent and not yet acknowledged.", registry=registry
        )
        self.connected = Gauge("generator_kafka_connected", "1 when Kafka is reachable.", registry=registry)
        ProcessCollector(registry=registry)  # process_start_time_seconds: the restart alert watches it
