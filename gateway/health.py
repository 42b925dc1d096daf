"""Pure logic of GET /status: from the raw probe results to per-component health, cross-stage
accounting and the pipeline's `overall` verdict. No I/O here; `now` is passed in.

The rules (`overall` is the worst of the components and the accounting):

down (HTTP 503): the pipeline cannot carry new events into merged.csv, or cannot serve it.
  - kafka: unreachable, or KAFKA_BOOTSTRAP_SERVERS not configured.
  - spark: progress state "failed" or "stopped"; a "starting"/"running" progress whose driver pid
    no longer exists (same host, `spark_check_pid`); stale: no progress update for
    `spark_stale_after_s` while Kafka holds events Spark has not read; or no progress file at all
    while Kafka holds events.
  - merger: unreachable, timing out or answering errors (merged.csv cannot be served).

degraded (HTTP 200): everything flows or can flow, but something needs a look.
  - generator: unreachable or in state degraded/failed (no new events can be started, the data
    already in the pipeline still flows and merged.csv is still served).
  - kafka: the topic does not exist yet.
  - spark: state "starting"; no progress file while there is no input yet; more than
    `spark_lag_warn_offsets` offsets behind Kafka.
  - merger: quarantined batch files; waiting for a missing batch (a gap); more than
    `merger_lag_warn_batches` batches behind the newest batch file.
  - accounting: after the pipeline drained, the stages disagree (Kafka events vs Spark input rows,
    Spark rows written vs rows merged).

ok: none of the above.

The document is contract/pipeline_status.py's PipelineStatus; each component's own status document
is passed through next to the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from contract.pipeline_status import (
    Accounting,
    Components,
    KafkaHealth,
    Lag,
    Level,
    PipelineStatus,
    ServiceHealth,
    SparkHealth,
)

_RANK: dict[str, int] = {"ok": 0, "degraded": 1, "down": 2}


def worst(*levels: Level) -> Level:
    return max(levels, key=lambda lv: _RANK[lv], default="ok")


@dataclass(frozen=True)
class Thresholds:
    spark_stale_after_s: float = 60.0
    spark_lag_warn_offsets: int = 100_000
    merger_lag_warn_batches: int = 10
    #: How long a source event of the merger (topic recreated, offsets skipped or going backwards,
    #: state rebuilt) keeps the pipeline `degraded`, so an operator sees it (README: Guarantees).
    merger_event_warn_s: float = 3600.0


@dataclass
class KafkaProbe:
    bootstrap: str
    topic: str
    reachable: bool = False
    error: str | None = None
    brokers: int = 0
    topic_exists: bool = False
    partitions: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)
    latency_ms: float | None = None


@dataclass
class HttpProbe:
    """One upstream status document (generator or merger)."""

    component: str
    url: str
    reachable: bool = False
    error: str | None = None
    doc: dict[str, Any] | None = None
    latency_ms: float | None = None


@dataclass
class SparkProbe:
    path: str
    doc: dict[str, Any] | None = None
    error: str | None = None  # unreadable / not a JSON object
    pid_alive: bool | None = None  # None: not checked


@dataclass
class Verdict:
    status: Level = "ok"
    reasons: list[str] = field(default_factory=list)

    def add(self, level: Level, reason: str) -> None:
        self.status = worst(self.status, level)
        self.reasons.append(reason)


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _int(v: object) -> int | None:
    n = _num(v)
    return int(n) if n is not None else None


def spark_offsets(doc: dict[str, Any] | None, key: str = "endOffsets") -> dict[int, int]:
    """{partition: offset} from a progress document (keys are strings in JSON)."""
    raw = (doc or {}).get(key)
    out: dict[int, int] = {}
    if isinstance(raw, dict):
        for p, o in raw.items():
            try:
                out[int(p)] = int(o)
            except (TypeError, ValueError):
                continue
    return out


def pending_input(kafka: KafkaProbe, spark_doc: dict[str, Any] | None) -> int | None:
    """Events in Kafka that Spark has not read yet, or None when Kafka could not be asked.
    Falls back to Spark's own offsetsBehindLatest when Kafka is unreachable."""
    if kafka.reachable and kafka.topic_exists:
        done = spark_offsets(spark_doc)
        return sum(max(0, end - done.get(p, 0)) for p, end in kafka.end_offsets.items())
    if kafka.reachable:
        return 0
    return _int((spark_doc or {}).get("offsetsBehindLatest"))


def assess_kafka(k: KafkaProbe) -> KafkaHealth:
    v = Verdict()
    if not k.bootstrap:
        v.add("down", "kafka: KAFKA_BOOTSTRAP_SERVERS is not set")
    elif not k.reachable:
        v.add("down", f"kafka: unreachable at {k.bootstrap}: {k.error or 'no answer'}")
    elif k.error:
        v.add("degraded", f"kafka: partial answer: {k.error}")
    elif not k.topic_exists:
        v.add("degraded", f"kafka: topic {k.topic!r} does not exist yet")
    return KafkaHealth(
        status=v.status,
        reasons=v.reasons,
        reachable=k.reachable,
        bootstrap=k.bootstrap,
        brokers=k.brokers,
        topic=k.topic,
        topic_exists=k.topic_exists,
        partitions=k.partitions,
        end_offsets={str(p): o for p, o in sorted(k.end_offsets.items())},
        total_events=sum(k.end_offsets.values()) if k.reachable else None,
        error=k.error,
        latency_ms=k.latency_ms,
    )


def service_health(p: HttpProbe, v: Verdict) -> ServiceHealth:
    """The service's own document with the verdict and the probe's fields over it (an upstream
    field cannot shadow them)."""
    fields = {"status": v.status, "reasons": v.reasons, "reachable": p.reachable, "url": p.url, "error": p.error}
    return ServiceHealth.model_validate({**(p.doc or {}), **fields})


def assess_generator(g: HttpProbe) -> ServiceHealth:
    v = Verdict()
    doc = g.doc or {}
    if not g.reachable:
        v.add("degraded", f"generator: {g.error or 'unreachable'} ({g.url})")
    else:
        state = doc.get("state")
        if state in ("degraded", "failed"):
            last = doc.get("last_error")
            v.add("degraded", f"generator: state {state}" + (f": {last}" if last else ""))
    return service_health(g, v)


def assess_spark(s: SparkProbe, kafka: KafkaProbe, now: float, t: Thresholds) -> SparkHealth:
    v = Verdict()
    doc = s.doc
    pending = pending_input(kafka, doc)
    info: dict[str, Any] = {"progress_file": s.path, "present": doc is not None, "pending_input": pending}
    if s.error:
        v.add("down", f"spark: progress file unreadable: {s.error}")
    elif doc is None:
        if pending:
            v.add("down", f"spark: no progress file ({s.path}) while {pending} events wait in Kafka")
        else:
            v.add("degraded", f"spark: no progress yet ({s.path})")
    else:
        state = doc.get("state")
        updated = _num(doc.get("updatedAt"))
        age = now - updated if updated is not None else None
        stale = bool(pending) and (age is None or age > t.spark_stale_after_s)
        info.update({"age_s": round(age, 3) if age is not None else None, "stale": stale, "pid_alive": s.pid_alive})
        if state == "failed":
            err = doc.get("lastError")
            v.add("down", "spark: job failed" + (f": {err}" if err else ""))
        elif state == "stopped":
            v.add("down", "spark: job stopped")
        elif s.pid_alive is False:
            v.add("down", f"spark: driver pid {doc.get('pid')} is not running (progress says {state!r})")
        elif stale:
            v.add(
                "down",
                f"spark: stale, no progress for {age:.0f}s while {pending} events wait in Kafka"
                if age is not None
                else f"spark: progress has no updatedAt while {pending} events wait in Kafka",
            )
        elif state == "starting":
            v.add("degraded", "spark: starting")
        if v.status == "ok" and pending is not None and pending > t.spark_lag_warn_offsets:
            v.add("degraded", f"spark: {pending} offsets behind Kafka")
    return SparkHealth.model_validate({**(doc or {}), **info, "status": v.status, "reasons": v.reasons})


def assess_merger(m: HttpProbe, t: Thresholds, now: float | None = None) -> ServiceHealth:
    v = Verdict()
    doc = m.doc or {}
    if not m.reachable:
        v.add("down", f"merger: {m.error or 'unreachable'} ({m.url})")
    else:
        quarantined = doc.get("quarantined") or []
        if quarantined:
            v.add("degraded", f"merger: {len(quarantined)} batch file(s) quarantined")
        if doc.get("waiting_for_batch") is not None:
            v.add("degraded", f"merger: waiting for missing batch {doc.get('waiting_for_batch')}")
        lag = _int(doc.get("lag_batches"))
        if lag is not None and lag > t.merger_lag_warn_batches:
            v.add("degraded", f"merger: {lag} batches behind")
        for event in recent_source_events(doc.get("events"), now, t.merger_event_warn_s):
            v.add("degraded", f"merger: {event.get('kind')}: {event.get('detail')}")
    return service_health(m, v)


def recent_source_events(events: object, now: float | None, within_s: float) -> list[dict[str, Any]]:
    """The merger's source events (a recreated topic...) of the last `within_s` seconds (all of them
    when `now` is unknown); anything that is not a list of objects is ignored."""
    if not isinstance(events, list):
        return []
    out = []
    for e in events:
        if not isinstance(e, dict):
            continue
        at = e.get("at")
        if now is None or not isinstance(at, int | float) or now - at <= within_s:
            out.append(e)
    return out


def account(kafka: KafkaProbe, gen: HttpProbe, spark: SparkProbe, merger: HttpProbe) -> Accounting:
    """Counts at each stage; when the pipeline has drained, whether they agree."""
    sdoc = spark.doc or {}
    totals = sdoc.get("totals") if isinstance(sdoc.get("totals"), dict) else {}
    gdoc = gen.doc or {}
    mdoc = merger.doc or {}
    acc = Accounting(
        events_in_kafka=sum(kafka.end_offsets.values()) if kafka.reachable else None,
        generator_acknowledged=_int(gdoc.get("acknowledged")) if gen.reachable else None,
        spark_input_rows=_int(totals.get("inputRows")),
        spark_rows_out=_int(totals.get("rowsOut")),
        spark_rejects=_int(totals.get("rejects")),
        spark_events_without_readings=_int(totals.get("eventsWithoutReadings")),
        rows_merged=_int(mdoc.get("rows_merged")) if merger.reachable else None,
        drained=False,
        consistent=None,
        notes=[],
    )
    notes = acc.notes
    pending = pending_input(kafka, spark.doc)
    spark_batch = _int(sdoc.get("batchId"))
    merged_batch = _int(mdoc.get("last_batch_id"))
    drained = (
        gen.reachable
        and gdoc.get("state") != "running"
        and kafka.reachable
        and pending == 0
        and spark.doc is not None
        and merger.reachable
        and (_int(mdoc.get("lag_batches")) or 0) == 0
        and mdoc.get("waiting_for_batch") is None
        and (spark_batch is None or (merged_batch is not None and merged_batch >= spark_batch))
    )
    acc.drained = bool(drained)
    if not drained:
        return acc
    consistent = True
    kafka_n, read_n = acc.events_in_kafka, acc.spark_input_rows
    if kafka_n is not None and read_n is not None and kafka_n != read_n:
        consistent = False
        notes.append(
            f"Kafka holds {kafka_n} events but Spark read {read_n} "
            "(different starting offsets, retention, or a lost checkpoint)"
        )
    written_n, merged_n = acc.spark_rows_out, acc.rows_merged
    if written_n is not None and merged_n is not None and written_n != merged_n:
        consistent = False
        notes.append(f"Spark wrote {written_n} rows but the merger merged {merged_n}")
    acc.consistent = consistent
    return acc


def assess(
    kafka: KafkaProbe,
    generator: HttpProbe,
    spark: SparkProbe,
    merger: HttpProbe,
    *,
    now: float,
    thresholds: Thresholds,
) -> PipelineStatus:
    """The whole /status document."""
    components = Components(
        kafka=assess_kafka(kafka),
        generator=assess_generator(generator),
        spark=assess_spark(spark, kafka, now, thresholds),
        merger=assess_merger(merger, thresholds, now),
    )
    each = (components.kafka, components.generator, components.spark, components.merger)
    accounting = account(kafka, generator, spark, merger)
    overall: Level = worst(*(c.status for c in each))
    reasons = [r for c in each for r in c.reasons]
    if accounting.consistent is False:
        overall = worst(overall, "degraded")
        reasons.extend(f"accounting: {n}" for n in accounting.notes)
    freshness = (merger.doc or {}).get("freshness") if merger.reachable else None
    lag = Lag(
        kafka_offsets_behind=components.spark.pending_input,
        merger_batches_behind=_int((merger.doc or {}).get("lag_batches")) if merger.reachable else None,
        end_to_end_s=_num(freshness.get("last_s")) if isinstance(freshness, dict) else None,
        end_to_end_p99_s=_num(freshness.get("p99_s")) if isinstance(freshness, dict) else None,
        spark_progress_age_s=components.spark.age_s,
    )
    return PipelineStatus(
        overall=overall,
        reasons=reasons,
        checked_at=now,
        components=components,
        accounting=accounting,
        lag=lag,
    )
