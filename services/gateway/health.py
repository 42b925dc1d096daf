"""Pure logic of GET /status: from the raw probe results to per-component health, cross-stage
accounting and the pipeline's `overall` verdict. No I/O here; `now` is passed in.

The rules (`overall` is the worst of the components and the accounting):

down (HTTP 503): the pipeline cannot carry new events into merged.csv, or cannot serve it.
  - kafka: unreachable, or KAFKA_BOOTSTRAP_SERVERS not configured.
  - spark: progress state "failed" or "stopped"; a "starting"/"running" progress whose driver pid
    no longer exists (same host, `spark_check_pid`); stale: no progress update for
    `spark_stale_after_s` while Kafka holds events Spark has not read; or no progress file at all
    while Kafka holds events.
  - merger: unreachable, timing out or answering errors (merged.csv cannot be served); a write in
    its folder fails (`write_blocked`: disk full, quota, I/O error): merging is paused, the message
    names the folder. Nothing is lost and it resumes by itself once the write succeeds.

degraded (HTTP 200): everything flows or can flow, but something needs a look.
  - generator: unreachable or in state degraded/failed (no new events can be started, the data
    already in the pipeline still flows and merged.csv is still served).
  - kafka: the topic does not exist yet.
  - spark: state "starting"; no progress file while there is no input yet; more than
    `spark_lag_warn_offsets` offsets behind Kafka.
  - merger: quarantined batch files; waiting for a missing batch (a gap); more than
    `merger_lag_warn_batches` batches behind the newest batch file; stale freshness: both its p99
    (over the merger's window) and its last value (the newest batch's freshest row) above
    `freshness_warn_s` (both: a few events that were already old when sent, such as the validity
    table's year-1 times, move the p99 but not the freshest row; an idle merger has no p99).
  - accounting: after the pipeline drained, the stages disagree (Kafka events vs Spark input rows,
    Spark rows written vs rows merged).

ok: none of the above.

The document is contract/pipeline_status.py's PipelineStatus; each component's own status document
is passed through next to the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contract.api import GeneratorStatus
from contract.merger_status import Freshness, MergerStatus, SourceEvent, WriteBlocked
from contract.pipeline_status import (
    Accounting,
    Components,
    GeneratorHealth,
    KafkaHealth,
    Lag,
    Level,
    MergerHealth,
    PipelineStatus,
    SparkHealth,
)
from contract.progress import SparkProgress

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
    #: Freshness (p99 and last) above this = degraded (GatewaySettings.freshness_warn_s says why 10 s).
    freshness_warn_s: float = 10.0


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


DocT = TypeVar("DocT", bound=BaseModel)
HealthT = TypeVar("HealthT", GeneratorHealth, MergerHealth)


@dataclass
class HttpProbe(Generic[DocT]):
    """One upstream status document (generator or merger), parsed with its contract model."""

    component: str
    url: str
    reachable: bool = False
    error: str | None = None
    doc: DocT | None = None
    latency_ms: float | None = None


GeneratorProbe = HttpProbe[GeneratorStatus]
MergerProbe = HttpProbe[MergerStatus]


@dataclass
class SparkProbe:
    path: str
    doc: SparkProgress | None = None
    error: str | None = None  # unreadable / not a JSON object
    pid_alive: bool | None = None  # None: not checked


@dataclass
class Verdict:
    status: Level = "ok"
    reasons: list[str] = field(default_factory=list)

    def add(self, level: Level, reason: str) -> None:
        self.status = worst(self.status, level)
        self.reasons.append(reason)


def reported(doc: BaseModel | None, name: str) -> Any:
    """The field `name` of an upstream document when the document carried it, else None (unknown):
    the models give every field a default so an older document parses, but a count the upstream
    did not report must not read as 0."""
    return getattr(doc, name) if doc is not None and name in doc.model_fields_set else None


def as_reported(doc: BaseModel | None) -> dict[str, Any]:
    """The document as the upstream sent it (its own fields and any it added; no defaults)."""
    return doc.model_dump(mode="json", exclude_unset=True) if doc is not None else {}


def pending_input(kafka: KafkaProbe, spark_doc: SparkProgress | None) -> int | None:
    """Events in Kafka that Spark has not read yet, or None when Kafka could not be asked.
    Falls back to Spark's own offsetsBehindLatest when Kafka is unreachable."""
    if kafka.reachable and kafka.topic_exists:
        done = spark_doc.partition_offsets() if spark_doc is not None else {}
        return sum(max(0, end - done.get(p, 0)) for p, end in kafka.end_offsets.items())
    if kafka.reachable:
        return 0
    return spark_doc.offsets_behind_latest if spark_doc is not None else None


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


def service_health(model: type[HealthT], p: HttpProbe[DocT], v: Verdict) -> HealthT:
    """The service's own document (as it sent it) with the verdict and the probe's fields over it
    (an upstream field cannot shadow them)."""
    fields = {"status": v.status, "reasons": v.reasons, "reachable": p.reachable, "url": p.url, "error": p.error}
    return model.model_validate({**as_reported(p.doc), **fields})


def assess_generator(g: GeneratorProbe) -> GeneratorHealth:
    v = Verdict()
    doc = g.doc
    if not g.reachable or doc is None:
        v.add("degraded", f"generator: {g.error or 'unreachable'} ({g.url})")
    elif doc.state in ("degraded", "failed"):
        last = doc.last_error
        v.add("degraded", f"generator: state {doc.state}" + (f": {last}" if last else ""))
    return service_health(GeneratorHealth, g, v)


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
        state = doc.state
        updated = doc.updated_at
        age = now - updated if updated is not None else None
        stale = bool(pending) and (age is None or age > t.spark_stale_after_s)
        info.update({"age_s": round(age, 3) if age is not None else None, "stale": stale, "pid_alive": s.pid_alive})
        if state == "failed":
            err = doc.last_error
            v.add("down", "spark: job failed" + (f": {err}" if err else ""))
        elif state == "stopped":
            v.add("down", "spark: job stopped")
        elif s.pid_alive is False:
            v.add("down", f"spark: driver pid {doc.pid} is not running (progress says {state!r})")
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
    return SparkHealth.model_validate({**as_reported(doc), **info, "status": v.status, "reasons": v.reasons})


def assess_merger(m: MergerProbe, t: Thresholds, now: float | None = None) -> MergerHealth:
    v = Verdict()
    doc = m.doc
    if not m.reachable or doc is None:
        v.add("down", f"merger: {m.error or 'unreachable'} ({m.url})")
    else:
        if doc.write_blocked is not None:
            v.add("down", write_blocked_reason(doc.write_blocked, now))
        if doc.quarantined:
            v.add("degraded", f"merger: {len(doc.quarantined)} batch file(s) quarantined")
        if doc.waiting_for_batch is not None:
            v.add("degraded", f"merger: waiting for missing batch {doc.waiting_for_batch}")
        if doc.lag_batches > t.merger_lag_warn_batches:
            v.add("degraded", f"merger: {doc.lag_batches} batches behind")
        if (late := stale_freshness(doc.freshness, t.freshness_warn_s)) is not None:
            v.add("degraded", f"merger: freshness {late:.1f}s (above {t.freshness_warn_s:g}s)")
        for event in recent_source_events(doc.events, now, t.merger_event_warn_s):
            v.add("degraded", f"merger: {event.kind}: {event.detail}")
    return service_health(MergerHealth, m, v)


def write_blocked_reason(w: WriteBlocked, now: float | None) -> str:
    """The disk rule's message: the condition and the folder first (what to free), then the detail."""
    since = f" for {max(0.0, now - w.since):.0f}s" if now is not None else ""
    return (
        f"merger: {w.condition} in {w.folder}: merging paused{since}, retried by itself once space is freed "
        f"(nothing lost; {w.step}: cannot write {w.path}: {w.error})"
    )


def stale_freshness(freshness: Freshness, warn_s: float) -> float | None:
    """The p99 freshness when it and the last value are both above `warn_s` (merged data arrives
    late), else None."""
    p99, last = freshness.p99_s, freshness.last_s
    if p99 is None or last is None or p99 <= warn_s or last <= warn_s:
        return None
    return p99


def recent_source_events(events: list[SourceEvent], now: float | None, within_s: float) -> list[SourceEvent]:
    """The merger's source events (a recreated topic...) of the last `within_s` seconds (all of them
    when `now` is unknown)."""
    return [e for e in events if now is None or now - e.at <= within_s]


def account(kafka: KafkaProbe, gen: GeneratorProbe, spark: SparkProbe, merger: MergerProbe) -> Accounting:
    """Counts at each stage; when the pipeline has drained, whether they agree."""
    sdoc, gdoc, mdoc = spark.doc, gen.doc, merger.doc
    totals = reported(sdoc, "totals")
    acc = Accounting(
        events_in_kafka=sum(kafka.end_offsets.values()) if kafka.reachable else None,
        generator_acknowledged=reported(gdoc, "acknowledged") if gen.reachable else None,
        spark_input_rows=reported(totals, "input_rows"),
        spark_rows_out=reported(totals, "rows_out"),
        spark_rejects=reported(totals, "rejects"),
        spark_events_without_readings=reported(totals, "events_without_readings"),
        rows_merged=reported(mdoc, "rows_merged") if merger.reachable else None,
        drained=False,
        consistent=None,
        notes=[],
    )
    notes = acc.notes
    pending = pending_input(kafka, spark.doc)
    spark_batch = sdoc.batch_id if sdoc is not None else None
    merged_batch = mdoc.last_batch_id if mdoc is not None else None
    drained = (
        gen.reachable
        and gdoc is not None
        and gdoc.state != "running"
        and kafka.reachable
        and pending == 0
        and sdoc is not None
        and merger.reachable
        and mdoc is not None
        and mdoc.lag_batches == 0
        and mdoc.waiting_for_batch is None
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
    generator: GeneratorProbe,
    spark: SparkProbe,
    merger: MergerProbe,
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
    mdoc = merger.doc if merger.reachable else None
    freshness = reported(mdoc, "freshness")
    lag = Lag(
        kafka_offsets_behind=components.spark.pending_input,
        merger_batches_behind=reported(mdoc, "lag_batches"),
        end_to_end_s=freshness.last_s if freshness is not None else None,
        end_to_end_p99_s=freshness.p99_s if freshness is not None else None,
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
