"""The pure /status rules (services/gateway/health.py): no I/O, a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contract.api import GeneratorStatus
from contract.merger_status import MergerStatus, SourceEvent
from contract.pipeline_status import PipelineStatus
from contract.progress import SparkProgress
from services.gateway.health import GeneratorProbe, HttpProbe, KafkaProbe, MergerProbe, SparkProbe, Thresholds, assess

NOW = 1_000_000.0
T = Thresholds(spark_stale_after_s=30, spark_lag_warn_offsets=1000, merger_lag_warn_batches=5)


def kafka(ends: dict[int, int] | None = None, **kw: Any) -> KafkaProbe:
    ends = {0: 10, 1: 10} if ends is None else ends
    return (
        KafkaProbe(
            bootstrap="b:9092", topic="t", reachable=True, brokers=1, topic_exists=True, partitions=2, end_offsets=ends
        )
        if not kw
        else KafkaProbe(bootstrap="b:9092", topic="t", **kw)
    )


#: The gateway's own fields of a component entry (the rest is what the component sent).
HEALTH = {"status", "reasons", "reachable", "url", "error"}


def gen(state: str = "idle", **kw: Any) -> GeneratorProbe:
    doc = GeneratorStatus.model_validate({"state": state, "acknowledged": 20, **kw})
    return HttpProbe("generator", "http://g", reachable=True, doc=doc)


def merger(**kw: Any) -> MergerProbe:
    doc = {"rows_merged": 30, "last_batch_id": 7, "lag_batches": 0, "waiting_for_batch": None, "quarantined": []}
    return HttpProbe("merger", "http://m", reachable=True, doc=MergerStatus.model_validate({**doc, **kw}))


def spark(**kw: Any) -> SparkProbe:
    doc = {
        "state": "running",
        "updatedAt": NOW - 1,
        "pid": 1,
        "batchId": 7,
        "endOffsets": {"0": 10, "1": 10},
        "totals": {"inputRows": 20, "rowsOut": 30, "rejects": 0},
    }
    return SparkProbe(path="p.json", doc=SparkProgress.model_validate({**doc, **kw}), pid_alive=True)


def run(
    k: KafkaProbe | None = None,
    g: GeneratorProbe | None = None,
    s: SparkProbe | None = None,
    m: MergerProbe | None = None,
) -> PipelineStatus:
    return assess(k or kafka(), g or gen(), s or spark(), m or merger(), now=NOW, thresholds=T)


def test_all_healthy_and_drained_is_ok_and_consistent() -> None:
    doc = run()
    assert doc.overall == "ok" and doc.reasons == []
    assert doc.accounting.drained and doc.accounting.consistent is True


def test_down_rules() -> None:
    assert run(k=kafka(reachable=False, error="refused")).overall == "down"
    assert run(k=KafkaProbe(bootstrap="", topic="t")).reasons == ["kafka: KAFKA_BOOTSTRAP_SERVERS is not set"]
    assert run(m=HttpProbe("merger", "http://m", error="unreachable")).overall == "down"
    for s, why in (
        (spark(state="failed", lastError="boom"), "spark: job failed: boom"),
        (spark(state="stopped"), "spark: job stopped"),
        (SparkProbe("p.json", doc=spark().doc, pid_alive=False), "spark: driver pid 1 is not running"),
        (SparkProbe("p.json", error="bad json"), "spark: progress file unreadable"),
    ):
        doc = run(s=s)
        assert doc.overall == "down" and doc.reasons[0].startswith(why), doc.reasons


def test_stale_only_counts_while_input_waits() -> None:
    old = spark(updatedAt=NOW - 300)
    assert run(s=old).overall == "ok"  # idle: nothing waits
    doc = run(k=kafka({0: 15, 1: 10}), s=old)
    assert doc.overall == "down" and "stale" in doc.reasons[0] and "5 events" in doc.reasons[0]
    assert doc.components.spark.pending_input == 5
    assert run(k=kafka({0: 15, 1: 10})).overall == "ok"  # fresh progress, just behind


def test_missing_progress_file() -> None:
    assert run(s=SparkProbe("p.json"), k=kafka({})).overall == "degraded"
    doc = run(s=SparkProbe("p.json"))
    assert doc.overall == "down" and "20 events wait" in doc.reasons[0]


def test_degraded_rules() -> None:
    assert run(g=HttpProbe("generator", "http://g", error="unreachable")).overall == "degraded"
    assert run(g=gen("failed", last_error="x")).reasons == ["generator: state failed: x"]
    assert run(s=spark(state="starting")).overall == "degraded"
    assert run(k=kafka(reachable=True, brokers=1)).reasons[0] == "kafka: topic 't' does not exist yet"
    assert run(k=kafka({0: 2000, 1: 10})).reasons == ["spark: 1990 offsets behind Kafka"]
    assert run(m=merger(quarantined=[{"file": "f", "reason": "r", "at": NOW}])).overall == "degraded"
    assert run(m=merger(waiting_for_batch=5)).reasons == ["merger: waiting for missing batch 5"]
    assert run(m=merger(lag_batches=9)).reasons == ["merger: 9 batches behind"]


def test_a_recent_source_event_of_the_merger_is_shown_as_degraded() -> None:
    recreated = {"kind": "topic_recreated", "at": NOW - 60, "detail": "topic id abc -> def", "lineage": "l"}
    doc = run(m=merger(events=[recreated]))
    assert doc.overall == "degraded"
    assert doc.reasons == ["merger: topic_recreated: topic id abc -> def"]
    assert doc.components.merger.events == [SourceEvent(**recreated)]  # the event itself, for the operator
    old = {**recreated, "at": NOW - T.merger_event_warn_s - 1}
    assert run(m=merger(events=[old])).overall == "ok"  # still listed, no longer a warning


def test_accounting_disagreement_after_drain_only() -> None:
    doc = run(m=merger(rows_merged=29))
    assert doc.overall == "degraded" and doc.accounting.consistent is False
    assert doc.reasons == ["accounting: Spark wrote 30 rows but the merger merged 29"]
    running = run(g=gen("running"), m=merger(rows_merged=29))  # in flight: no verdict
    assert running.overall == "ok" and running.accounting.drained is False
    behind = run(m=merger(rows_merged=29, last_batch_id=6))  # merger not caught up with spark's batch
    assert behind.accounting.consistent is None


def test_upstream_fields_cannot_shadow_verdict() -> None:
    # the generator's status names its fields (contract/api.py, extra="forbid"): a document with a
    # `status` or `reasons` of its own breaks the contract, and is never merged over the verdict
    with pytest.raises(ValidationError):
        gen(status="weird", reasons=["x"])
    doc = run(g=gen())
    assert doc.components.generator.status == "ok" and doc.components.generator.reasons == []


def test_the_document_reads_back_as_written() -> None:
    """What /status sends (unset fields left out) is what a reader parses with the same model; without
    a progress file Spark's age_s, stale and pid_alive are absent, not null."""
    for doc in (run(), run(s=SparkProbe("p.json"), k=kafka({})), run(k=KafkaProbe(bootstrap="", topic="t"))):
        sent = doc.model_dump_json(exclude_unset=True)
        assert PipelineStatus.model_validate_json(sent).model_dump() == doc.model_dump()
    no_file = run(s=SparkProbe("p.json"), k=kafka({})).model_dump(exclude_unset=True)["components"]["spark"]
    assert {"age_s", "stale", "pid_alive"}.isdisjoint(no_file) and no_file["present"] is False
    r1 = {"id": "r1", "state": "completed", "params": {"rate": 1.0}, "started_at": 0.0}
    assert run(g=gen(run=r1)).components.generator.model_dump(mode="json", exclude_unset=True, exclude=HEALTH) == {
        "state": "idle",
        "acknowledged": 20,
        "run": r1,
    }


def test_stale_freshness_is_degraded_only_when_p99_and_last_are_both_late() -> None:
    """Measured with the secure broker's failing topic-id ask: every batch 11.5-13.1 s, /status ok."""
    late = merger(freshness={"last_s": 12.4, "p50_s": 12.0, "p99_s": 13.1})
    doc = run(m=late)
    assert doc.overall == "degraded"
    assert doc.reasons == [f"merger: freshness 13.1s (above {T.freshness_warn_s:g}s)"]
    # a few old events (sent with old eventTimes) move the p99, not the freshest row: not a warning
    assert run(m=merger(freshness={"last_s": 0.4, "p50_s": 0.4, "p99_s": 9e9})).overall == "ok"
    # the newest batch late but the window fine (a single slow batch), or an idle merger (no p99)
    assert run(m=merger(freshness={"last_s": 30.0, "p50_s": 0.4, "p99_s": 0.9})).overall == "ok"
    assert run(m=merger(freshness={"last_s": 30.0})).overall == "ok"
    assert run(m=merger(freshness={"last_s": 0.3, "p50_s": 0.3, "p99_s": 0.7})).overall == "ok"
    at_limit = T.freshness_warn_s
    assert run(m=merger(freshness={"last_s": at_limit, "p99_s": at_limit})).overall == "ok"


def test_freshness_threshold_is_a_gateway_setting() -> None:
    from services.gateway.settings import GatewaySettings

    assert GatewaySettings().freshness_warn_s == Thresholds().freshness_warn_s == 10.0
    assert GatewaySettings(freshness_warn_s=3).freshness_warn_s == 3.0
