"""Integration with the real broker, in-process: seeded events and bad records through the streaming
query (Kafka source, foreachBatch sink, checkpoint, listener) into committed batch files."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from contract.batches import BatchManifest
from contract.csv import BATCH_ROW_HEADER, REJECT_HEADER, manifest_file_name
from contract.progress import PROGRESS_FIELDS, read_progress
from spark_job.job import make_sink, start_query
from spark_job.progress import ProgressListener, ProgressTracker
from spark_job.settings import SparkJobSettings
from spark_job.transform import Reason
from tests.conftest import Broker
from tests.helpers import wait_for
from tests.spark_job.events import (
    committed_files,
    event_records,
    expected_rows,
    make_events,
    produce,
    read_all,
    read_csv,
)

pytestmark = pytest.mark.integration

BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"{not json", Reason.NOT_JSON),
    (b'["an", "array"]', Reason.NOT_OBJECT),
    (b'{"eventOffset": 1, "eventTime": "2026-11-28T03:33:11.000000Z"}', Reason.missing("eventId")),
    (
        b'{"eventId": "x", "eventOffset": 2, "eventTime": "2026-11-28T03:33:11.000000Z",'
        b' "data": {"devices": [{"temperature": "hot"}]}}',
        Reason.wrong_type("data.devices[].temperature", "integer"),
    ),
    (b"\xc3\x28", Reason.NOT_UTF8),
]


def test_seeded_events_and_bad_records_land_exactly_once(spark: SparkSession, kafka: Broker, tmp_path: Path) -> None:
    topic = kafka.new_topic(partitions=3)
    events = make_events(seed=11, count=600)
    produce(kafka.bootstrap, topic, event_records(events[:300]) + [(b"bad", v) for v, _ in BAD_RECORDS])
    settings = SparkJobSettings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka.bootstrap,
        topic=topic,
        trigger_interval="0",
        max_offsets_per_trigger=120,
        query_name=f"stream-test-{uuid.uuid4().hex[:8]}",
    )
    tracker = ProgressTracker(settings.progress_file, resume_batches=False)
    listener = ProgressListener(tracker, settings.query_name)
    spark.streams.addListener(listener)
    query = start_query(spark, settings, make_sink(spark, settings, tracker))
    try:
        query.processAllAvailable()
        produce(kafka.bootstrap, topic, event_records(events[300:]))
        query.processAllAvailable()
    finally:
        query.stop()
        spark.streams.removeListener(listener)

    rows_files = committed_files(settings.rows_dir)
    assert list(rows_files) == list(range(len(rows_files)))  # consecutive batch ids from 0
    assert len(rows_files) >= (600 + len(BAD_RECORDS)) // 120  # maxOffsetsPerTrigger honoured
    assert set(committed_files(settings.rejects_dir)) < set(rows_files)  # only batches with rejects have one
    for path in rows_files.values():
        assert ",".join(read_csv(path)[0]) == BATCH_ROW_HEADER
    manifests = [BatchManifest.from_bytes(p.read_bytes()) for p in sorted(settings.rows_dir.glob("*.manifest.json"))]
    assert [m.batch_id for m in manifests] == list(rows_files)
    assert len({m.lineage for m in manifests}) == 1 and manifests[0].topic == topic and manifests[0].topic_id
    for p in range(3):  # consecutive offset ranges from 0 to the end of each partition
        ranges = [(m.offsets[p].start, m.offsets[p].end) for m in manifests if p in m.offsets]
        assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert sum(m.offsets[p].end for p in range(3) for m in manifests[-1:]) == 600 + len(BAD_RECORDS)
    got = [r[2:] for r in read_all(settings.rows_dir)]
    assert len(got) == len(set(got))
    assert sorted(got) == expected_rows(events)

    rejects = read_all(settings.rejects_dir)
    assert sorted((r[3], r[4]) for r in rejects if r[3] != Reason.NOT_UTF8) == sorted(
        (reason, v.decode()) for v, reason in BAD_RECORDS if reason != Reason.NOT_UTF8
    )
    assert [r[4] for r in rejects if r[3] == Reason.NOT_UTF8] == ["base64:wyg="]
    for path in committed_files(settings.rejects_dir).values():
        assert ",".join(read_csv(path)[0]) == REJECT_HEADER

    assert tuple(json.loads(settings.progress_file.read_text())) == PROGRESS_FIELDS
    doc = read_progress(settings.progress_file)
    assert doc is not None
    without_readings = sum(1 for e in events if not e["data"]["devices"])
    assert doc.totals.model_dump() == {
        "inputRows": 600 + len(BAD_RECORDS),
        "rowsOut": len(got),
        "rejects": len(BAD_RECORDS),
        "eventsWithoutReadings": without_readings,
        "batches": len(rows_files),
    }
    assert doc.batch_id == len(rows_files) - 1
    # Offsets come from the query listener, whose events arrive asynchronously after the batch.
    wait_for(
        lambda: (
            sum(doc.end_offsets.values() if (doc := read_progress(settings.progress_file)) else ())
            == 600 + len(BAD_RECORDS)
        ),
        30,
        "the listener to report the last batch's end offsets",
    )


def test_a_topic_id_that_changes_during_the_run_fails_the_query_with_the_refusal(
    spark: SparkSession, kafka: Broker, tmp_path: Path
) -> None:
    """The check inside a batch (the sink asks for the topic id again when its offsets do not
    continue, or after a while): a different id than the checkpoint's record fails the query before
    anything is written, and the guard keeps the one line for the job's lastError."""
    from spark_job.topic_guard import TopicGuard

    topic = kafka.new_topic(partitions=1)
    produce(kafka.bootstrap, topic, event_records(make_events(seed=3, count=20)))
    settings = SparkJobSettings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka.bootstrap,
        topic=topic,
        trigger_interval="0",
        query_name=f"guard-test-{uuid.uuid4().hex[:8]}",
    )
    checkpoint = settings.checkpoint_dir
    ids = iter(["id-1", "id-2"])  # a stand-in lookup: the topic recreated between two asks
    guard = TopicGuard(checkpoint, topic, lambda: next(ids), lambda: True)
    assert guard() == "id-1"  # the job's check at start: recorded
    query = start_query(spark, settings, make_sink(spark, settings, None, guard))
    try:
        wait_for(lambda: not query.isActive, 240, "the query to fail")
    finally:
        query.stop()
    assert query.exception() is not None
    assert guard.refusal is not None and "was recreated (topic id id-1, now id-2)" in guard.refusal
    assert committed_files(settings.rows_dir) == {}  # nothing written under the other topic's offsets


def test_kafka_partitions_cut_into_several_tasks_still_make_one_ordered_file_per_batch(
    spark: SparkSession, kafka: Broker, tmp_path: Path
) -> None:
    """SPARK_JOB_MIN_PARTITIONS: a batch's big Kafka partitions are read by several tasks (each a
    contiguous offset range); the batch is still one rows file, each Kafka partition's rows together in
    offset order (Spark orders the partitions as it likes), within the manifest's offset ranges (what
    the merger keys exactly-once on)."""
    topic = kafka.new_topic(partitions=3)
    events = make_events(seed=12, count=900)
    produce(kafka.bootstrap, topic, event_records(events))
    settings = SparkJobSettings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka.bootstrap,
        topic=topic,
        trigger_interval="0",
        max_offsets_per_trigger=450,
        single_task_below=0,  # always the per-partition path (Spark's CSV writer, a part file per task)
        min_partitions=7,
        query_name=f"stream-split-{uuid.uuid4().hex[:8]}",
    )
    split = spark.read.format("kafka").options(**settings.kafka_source_options).option("subscribe", topic)
    assert split.option("minPartitions", "7").load().rdd.getNumPartitions() >= 6  # Spark does cut them
    query = start_query(spark, settings, make_sink(spark, settings, None))
    try:
        query.processAllAvailable()
    finally:
        query.stop()

    rows_files = committed_files(settings.rows_dir)
    assert len(rows_files) >= 2
    for batch_id, path in rows_files.items():
        manifest = BatchManifest.from_bytes((settings.rows_dir / manifest_file_name(path.name)).read_bytes())
        assert manifest.batch_id == batch_id
        keys = [(int(r[0]), int(r[1])) for r in read_csv(path)[1]]
        partitions = [p for p, _ in itertools.groupby(k[0] for k in keys)]
        assert len(partitions) == len(set(partitions)), "a Kafka partition's rows are together"
        assert all(a <= b for a, b in itertools.pairwise(keys) if a[0] == b[0]), "in offset order"
        for p, o in keys:
            assert (manifest.offsets[p].start or 0) <= o < manifest.offsets[p].end
    got = [r[2:] for r in read_all(settings.rows_dir)]
    assert sorted(got) == expected_rows(events) and len(got) == len(set(got))


def test_min_partitions_defaults_to_one_task_per_kafka_partition() -> None:
    assert SparkJobSettings().source_min_partitions(2) == 1
    assert SparkJobSettings(min_partitions=0).source_min_partitions(2) == 8  # four per core
    assert SparkJobSettings(min_partitions=5).source_min_partitions(2) == 5
