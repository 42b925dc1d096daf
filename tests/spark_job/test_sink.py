"""The foreachBatch sink on batch DataFrames: one committed rows file and one rejects file per batch."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from contract.batches import BatchManifest, OffsetRange
from contract.csv import BATCH_ROW_HEADER, REJECT_HEADER, ROW_HEADER, batch_file_name, make_lineage, manifest_file_name
from spark_job.progress import BatchCounts
from spark_job.sink import BatchSink
from spark_job.transform import classify
from tests.spark_job.events import committed_files, encode, make_events, read_csv
from tests.spark_job.test_transform import GOOD, kafka_df

LINEAGE = make_lineage(1764390000123, "1a2b3c4d-0000")
RANGES = {0: OffsetRange(start=100, end=104), 1: OffsetRange(start=None, end=7)}


def make_sink(tmp_path: Path, calls: list[tuple[int, BatchCounts]]) -> BatchSink:
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
    )
    sink.prepare()
    return sink


def name(batch_id: int) -> str:
    return batch_file_name(batch_id, LINEAGE)


def test_batch_files_hold_rows_and_rejects_escaped(spark: SparkSession, tmp_path: Path) -> None:
    tricky = dict(GOOD, eventOffset=10001, customerId='CI,"00100"\nx', eventPublisher=" padded ")
    values = [encode(tricky), encode(GOOD), b'not "json",\nat all', b"\xff\xfe"]
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)

    counts = sink.write_batch(classify(kafka_df(spark, values)), 42)

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


def test_empty_batch_writes_a_header_only_rows_file_and_no_rejects_file(spark: SparkSession, tmp_path: Path) -> None:
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)
    counts = sink.write_batch(classify(kafka_df(spark, [])), 0)
    assert counts == BatchCounts(0, 0, 0, 0)
    assert (tmp_path / "rows" / name(0)).read_text() == BATCH_ROW_HEADER + "\n"
    assert (tmp_path / "rows" / manifest_file_name(name(0))).exists()
    assert list((tmp_path / "rejects").iterdir()) == []


def test_a_rejects_file_is_never_overwritten(spark: SparkSession, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, [])
    sink.write_batch(classify(kafka_df(spark, [b"[1]"])), 3)
    path = tmp_path / "rejects" / name(3)
    path.write_text(REJECT_HEADER + "\nkept\n")
    sink.write_batch(classify(kafka_df(spark, [b"[2]"])), 3)
    assert path.read_text() == REJECT_HEADER + "\nkept\n"


def test_rerun_of_a_batch_rewrites_the_same_bytes_under_the_same_name(spark: SparkSession, tmp_path: Path) -> None:
    values = [encode(e) for e in make_events(seed=3, count=200)] + [b"[1]"]
    sink = make_sink(tmp_path, [])
    df = classify(kafka_df(spark, values))
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
