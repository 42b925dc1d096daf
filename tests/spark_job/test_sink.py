"""The foreachBatch sink on batch DataFrames: one committed rows file and one rejects file per batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from contract.batches import BatchManifest, LineageCounter, OffsetRange
from contract.csv import BATCH_ROW_HEADER, REJECT_HEADER, ROW_HEADER, batch_file_name, make_lineage, manifest_file_name
from spark_job.batch_identity import take_lineage_seq
from spark_job.progress import BatchCounts
from spark_job.sink import BatchSink
from spark_job.transform import screen
from tests.spark_job.events import committed_files, encode, make_events, read_csv
from tests.spark_job.test_transform import GOOD, kafka_df

LINEAGE = make_lineage(1764390000123, "1a2b3c4d-0000")
RANGES = {0: OffsetRange(start=100, end=104), 1: OffsetRange(start=None, end=7)}


def make_sink(tmp_path: Path, calls: list[tuple[int, BatchCounts]], lineage_counter: Path | None = None) -> BatchSink:
    sink = BatchSink(
        tmp_path / "rows",
        tmp_path / "rejects",
        tmp_path / "_tmp",
        lambda b, c: calls.append((b, c)),
        lineage=lambda: LINEAGE,
        ranges=lambda batch_id: RANGES,
        topic="t",
        topic_id=lambda: "topic-id-1",
        durable=True,
        lineage_counter=lineage_counter,
    )
    sink.prepare()
    return sink


def name(batch_id: int) -> str:
    return batch_file_name(batch_id, LINEAGE)


@pytest.mark.integration
def test_batch_files_hold_rows_and_rejects_escaped(spark: SparkSession, tmp_path: Path) -> None:
    tricky = dict(GOOD, eventOffset=10001, customerId='CI,"00100"\nx', eventPublisher=" padded ")
    values = [encode(tricky), encode(GOOD), b'not "json",\nat all', b"\xff\xfe"]
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)

    counts = sink.write_batch(screen(kafka_df(spark, values)), 42)

    assert counts == BatchCounts(input_rows=4, rows_out=4, rejects=2, events_without_readings=0)
    assert calls == [(42, counts)]
    rows_file = tmp_path / "rows" / name(42)
    raw = rows_file.read_text()
    assert raw.startswith(BATCH_ROW_HEADER + "\n")
    assert '"CI,""00100""\nx"' in raw
    header, data = read_csv(rows_file)
    assert ",".join(header) == BATCH_ROW_HEADER
    assert [r[:2] for r in data] == [["0", "100"], ["0", "100"], ["1", "101"], ["1", "101"]]
    data = [r[2:] for r in data]
    assert data[0][:6] == [GOOD["eventId"], "10001", " padded ", 'CI,"00100"\nx', GOOD["eventTime"], "0"]
    assert data[1][6:] == ["", "0", "C", ""]  # null deviceId and status -> empty fields
    assert [r[1] for r in data] == ["10001", "10001", "10000", "10000"]
    manifest = BatchManifest.from_bytes((tmp_path / "rows" / manifest_file_name(name(42))).read_bytes())
    assert (manifest.lineage, manifest.batch_id, manifest.topic, manifest.topic_id) == (LINEAGE, 42, "t", "topic-id-1")
    assert manifest.offsets == RANGES
    assert (manifest.input_records, manifest.rows, manifest.rejects) == (4, 4, 2)
    header, rejects = read_csv(tmp_path / "rejects" / name(42))
    assert ",".join(header) == REJECT_HEADER
    assert [r[:4] for r in rejects] == [["42", "2", "102", "not JSON"], ["42", "0", "103", "not UTF-8"]]
    assert rejects[0][4] == 'not "json",\nat all'
    assert rejects[1][4] == "base64://4="
    assert list(committed_files(tmp_path / "rows")) == [42]
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == [name(42), manifest_file_name(name(42))]
    assert list((tmp_path / "_tmp").iterdir()) == []


@pytest.mark.integration
def test_empty_batch_writes_a_header_only_rows_file_and_no_rejects_file(spark: SparkSession, tmp_path: Path) -> None:
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)
    counts = sink.write_batch(screen(kafka_df(spark, [])), 0)
    assert counts == BatchCounts(0, 0, 0, 0)
    assert (tmp_path / "rows" / name(0)).read_text() == BATCH_ROW_HEADER + "\n"
    assert (tmp_path / "rows" / manifest_file_name(name(0))).exists()
    assert list((tmp_path / "rejects").iterdir()) == []


@pytest.mark.integration
def test_a_rejects_file_is_never_overwritten(spark: SparkSession, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, [])
    sink.write_batch(screen(kafka_df(spark, [b"[1]"])), 3)
    path = tmp_path / "rejects" / name(3)
    path.write_text(REJECT_HEADER + "\nkept\n")
    sink.write_batch(screen(kafka_df(spark, [b"[2]"])), 3)
    assert path.read_text() == REJECT_HEADER + "\nkept\n"


@pytest.mark.integration
def test_rerun_of_a_batch_rewrites_the_same_bytes_under_the_same_name(spark: SparkSession, tmp_path: Path) -> None:
    values = [encode(e) for e in make_events(seed=3, count=200)] + [b"[1]"]
    sink = make_sink(tmp_path, [])
    df = screen(kafka_df(spark, values))
    sink.write_batch(df, 5)
    first = {p.name: p.read_bytes() for p in (tmp_path / "rows").iterdir()}
    (tmp_path / "rows" / name(5)).unlink()  # the merger may delete merged files
    sink.write_batch(df, 5)
    after = {p.name: p.read_bytes() for p in (tmp_path / "rows").iterdir()}
    manifest = manifest_file_name(name(5))
    assert BatchManifest.from_bytes(after.pop(manifest)).model_copy(update={"written_at": 0}) == (
        BatchManifest.from_bytes(first.pop(manifest)).model_copy(update={"written_at": 0})
    )
    assert after == first


def test_prepare_removes_only_temp_leftovers(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / batch_file_name(1)).write_text(ROW_HEADER + "\n")
    (rows / f".{batch_file_name(2)}.tmp-123").write_text("partial")
    (tmp_path / "_tmp" / "rows-batch-x").mkdir(parents=True)
    make_sink(tmp_path, [])
    assert sorted(p.name for p in rows.iterdir()) == [batch_file_name(1)]
    assert list((tmp_path / "_tmp").iterdir()) == []


@pytest.mark.integration
def test_a_batch_written_by_several_tasks_is_one_file_with_one_header(spark: SparkSession, tmp_path: Path) -> None:
    """No coalesce(1): every task writes its own part file and the commit joins them."""
    values = [encode(e) for e in make_events(seed=4, count=300)]
    sink = make_sink(tmp_path, [])
    df = kafka_df(spark, values).repartition(3, "partition")
    assert df.rdd.getNumPartitions() == 3
    counts = sink.write_batch(screen(df), 6)
    header, rows = read_csv(tmp_path / "rows" / name(6))
    assert ",".join(header) == BATCH_ROW_HEADER
    assert len(rows) == counts.rows_out and counts.input_rows == 300
    assert BATCH_ROW_HEADER not in {",".join(r) for r in rows}
    one_task = make_sink(tmp_path / "one", [])
    one_task.write_batch(screen(kafka_df(spark, values).coalesce(1)), 6)
    _, same = read_csv(tmp_path / "one" / "rows" / name(6))
    assert sorted(rows) == sorted(same)  # the same rows, each once, whatever the tasks
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_topic_id_is_asked_again_only_when_the_offsets_do_not_continue() -> None:
    from spark_job.batch_identity import TOPIC_ID_MAX_AGE_S, topic_id_stale

    prev = {0: OffsetRange(start=0, end=10), 1: OffsetRange(start=5, end=8)}
    cont = {0: OffsetRange(start=10, end=12), 1: OffsetRange(start=8, end=8)}
    assert not topic_id_stale("id", 1.0, prev, cont)
    assert topic_id_stale(None, 1.0, prev, cont)  # never asked (or the broker could not answer)
    assert topic_id_stale("id", TOPIC_ID_MAX_AGE_S, prev, cont)
    assert topic_id_stale("id", 1.0, {}, cont)  # the first batch of this process
    assert topic_id_stale("id", 1.0, prev, {0: OffsetRange(start=0, end=3)})  # recreated topic: offsets restart
    assert topic_id_stale("id", 1.0, prev, {**cont, 2: OffsetRange(start=0, end=1)})  # a new partition
    assert topic_id_stale("id", 1.0, prev, {})  # no ranges known: cannot tell


@pytest.mark.integration
def test_the_sink_asks_the_broker_once_while_offsets_continue(spark: SparkSession, tmp_path: Path) -> None:
    asked: list[int] = []
    ranges = {
        0: {0: OffsetRange(start=0, end=1)},
        1: {0: OffsetRange(start=1, end=2)},
        2: {0: OffsetRange(start=0, end=1)},
    }
    sink = BatchSink(
        tmp_path / "rows",
        tmp_path / "rejects",
        tmp_path / "_tmp",
        lineage=lambda: LINEAGE,
        ranges=lambda batch_id: ranges[batch_id],
        topic="t",
        topic_id=lambda: f"id-{len(asked)}" if not asked.append(1) else "",
    )
    sink.prepare()
    for batch_id in range(3):
        sink.write_batch(screen(kafka_df(spark, [encode(GOOD)])), batch_id)
    ids = [
        BatchManifest.from_bytes((tmp_path / "rows" / manifest_file_name(name(b))).read_bytes()).topic_id
        for b in range(3)
    ]
    assert ids == ["id-1", "id-1", "id-2"] and len(asked) == 2


def test_a_failed_ask_keeps_the_known_id_while_the_offsets_continue(tmp_path: Path) -> None:
    """A slow broker (an ask timing out) must not turn a known topic id into an unknown one in the
    manifests while the batches continue each other; when the offsets jump, unknown is the truth."""
    answers: list[str | None] = ["id-1", None, None]
    sink = BatchSink(
        tmp_path / "rows",
        tmp_path / "rejects",
        tmp_path / "_tmp",
        lineage=lambda: LINEAGE,
        ranges=lambda batch_id: {},
        topic="t",
        topic_id=lambda: answers.pop(0),
    )
    assert sink._current_topic_id({0: OffsetRange(start=0, end=5)}) == "id-1"
    sink._topic_id_at -= 3600  # due for a new ask
    assert sink._current_topic_id({0: OffsetRange(start=5, end=9)}) == "id-1"  # failed ask, offsets continue
    assert sink._current_topic_id({0: OffsetRange(start=0, end=3)}) is None  # failed ask, offsets jumped


def test_small_batches_run_as_one_task_large_ones_per_partition() -> None:
    from spark_job.sink import one_task

    small = {0: OffsetRange(start=0, end=400), 1: OffsetRange(start=10, end=500)}
    assert one_task(small, 1_000)
    assert not one_task(small, 890)  # 890 records: not fewer than 890
    assert not one_task(small, 0)  # 0 turns it off
    assert not one_task({}, 1_000)  # no ranges: the size is unknown
    assert not one_task({0: OffsetRange(start=None, end=5)}, 1_000)


@pytest.mark.integration
def test_a_few_huge_values_in_a_small_batch_are_streamed_to_the_file(spark: SparkSession, tmp_path: Path) -> None:
    """Three records, far fewer than single_task_below, whose values of empty readings make 150,000
    rows: the one-task path writes them with Spark's CSV writer (rows streamed to the part file,
    nothing collected into the driver), every row there."""
    readings = 50_000
    values = [encode(dict(GOOD, eventOffset=20_000 + i, data={"devices": [{}] * readings})) for i in range(3)]
    ranges = {0: OffsetRange(start=0, end=len(values))}
    sink = BatchSink(
        tmp_path / "rows",
        tmp_path / "rejects",
        tmp_path / "_tmp",
        lineage=lambda: LINEAGE,
        ranges=lambda batch_id: ranges,
        topic="t",
        single_task_below=50_000,
    )
    sink.prepare()
    counts = sink.write_batch(screen(kafka_df(spark, values)), 3)
    assert sink.last_path == "one task, strict"  # readings {} are valid but not canonical
    assert counts.rows_out == 3 * readings
    assert (tmp_path / "rows" / name(3)).read_bytes().count(b"\n") == 3 * readings + 1


@pytest.mark.integration
def test_one_task_and_per_partition_batches_have_the_same_bytes(spark: SparkSession, tmp_path: Path) -> None:
    """The two ways a rows file is written (one task for a small batch, a task per input split for a
    large one) give the same bytes, whatever the fields hold."""
    tricky = [
        dict(GOOD, eventOffset=10001, customerId='CI,"00100"\nx', eventPublisher=" padded "),
        dict(GOOD, eventOffset=10002, customerId="cr\rcrlf\r\nend", eventPublisher=""),
        dict(GOOD, eventOffset=10003, customerId="tab\tbell\x07nul-free ü 東京 😀", eventPublisher="x" * 200_000),
        dict(GOOD, eventOffset=10004, customerId=None, eventPublisher='"'),
    ]
    values = [encode(e) for e in tricky] + [encode(e) for e in make_events(seed=5, count=50)] + [b"[1]"]
    ranges = {0: OffsetRange(start=0, end=len(values))}

    def written(single_task_below: int, folder: Path) -> bytes:
        sink = BatchSink(
            folder / "rows",
            folder / "rejects",
            folder / "_tmp",
            lineage=lambda: LINEAGE,
            ranges=lambda batch_id: ranges,
            topic="t",
            single_task_below=single_task_below,
        )
        sink.prepare()
        sink.write_batch(screen(kafka_df(spark, values)), 9)
        return (folder / "rows" / name(9)).read_bytes()

    one_task = written(10_000, tmp_path / "one-task")
    per_partition = written(0, tmp_path / "per-partition")
    assert one_task == per_partition
    assert one_task.count(b"\n") > 50 and b"\xc3\xbc" in one_task  # (rows, UTF-8 kept)


@pytest.mark.integration
def test_each_job_run_takes_the_next_lineage_seq_into_its_manifests(spark: SparkSession, tmp_path: Path) -> None:
    counter = tmp_path / "lineage.json"  # (spark/lineage.json: outside the checkpoint)
    for run in range(2):  # a sink per job run; the checkpoint (and its lineage name) the same
        sink = make_sink(tmp_path, [], lineage_counter=counter)
        sink.write_batch(screen(kafka_df(spark, [encode(GOOD)])), run)
        manifest = BatchManifest.from_bytes((tmp_path / "rows" / manifest_file_name(name(run))).read_bytes())
        assert (manifest.lineage, manifest.lineage_seq) == (LINEAGE, run)
    assert LineageCounter.from_bytes(counter.read_bytes()).seq == 1


def test_the_lineage_seq_only_moves_forward(tmp_path: Path) -> None:
    path = tmp_path / "lineage.json"
    assert [take_lineage_seq(path, LINEAGE) for _ in range(3)] == [0, 1, 2]
    path.write_text("{}")  # edited by hand: a jump forward, never back to 0
    assert take_lineage_seq(path, LINEAGE) > 2


@pytest.mark.integration
def test_only_batches_with_records_that_are_not_canonical_take_the_strict_checks(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The streaming plan classifies canonical records only; a batch with any other record is
    written again with the strict checks, the next batch starts with them (one pass) until a batch
    is canonical again; every batch's rows file is the same as for canonical records."""
    events = make_events(seed=7, count=40)
    canonical = [encode(e) for e in events]
    # the same event, valid but not as the generator writes it (other field order, spaces)
    reordered = json.dumps(events[17], sort_keys=True, indent=1).encode()
    mixed = [*canonical[:17], reordered, *canonical[18:]]
    sink = make_sink(tmp_path, [])
    paths, files, counts = [], set(), set()
    for batch_id, values in enumerate((canonical, mixed, mixed, canonical, canonical)):
        counts.add(sink.write_batch(screen(kafka_df(spark, values)), batch_id))
        paths.append(sink.last_path.removeprefix("per partition"))
        files.add((tmp_path / "rows" / name(batch_id)).read_bytes())
        assert list((tmp_path / "_tmp").iterdir()) == []
    assert paths == ["", ", strict", ", strict", ", strict", ""]
    assert len(files) == 1
    assert len(counts) == 1 and counts.pop().input_rows == 40
    assert list((tmp_path / "rejects").iterdir()) == []
