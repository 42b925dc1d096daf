"""The foreachBatch sink on batch DataFrames: one committed rows file and one rejects file per batch."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from contract.csv import REJECT_HEADER, ROW_HEADER, batch_file_name
from spark_job.progress import BatchCounts
from spark_job.sink import BatchSink
from spark_job.transform import classify
from tests.spark_job.events import committed_files, encode, make_events, read_csv
from tests.spark_job.test_transform import GOOD, kafka_df


def make_sink(tmp_path: Path, calls: list[tuple[int, BatchCounts]]) -> BatchSink:
    sink = BatchSink(
        tmp_path / "rows", tmp_path / "rejects", tmp_path / "_tmp", lambda b, c: calls.append((b, c)), durable=True
    )
    sink.prepare()
    return sink


def test_batch_files_hold_rows_and_rejects_escaped(spark: SparkSession, tmp_path: Path) -> None:
    tricky = dict(GOOD, eventOffset=10001, customerId='CI,"00100"\nx', eventPublisher=" padded ")
    values = [encode(tricky), encode(GOOD), b'not "json",\nat all', b"\xff\xfe"]
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)

    counts = sink.write_batch(classify(kafka_df(spark, values)), 42)

    assert counts == BatchCounts(input_rows=4, rows_out=4, rejects=2, events_without_readings=0)
    assert calls == [(42, counts)]
    rows_file = tmp_path / "rows" / batch_file_name(42)
    raw = rows_file.read_text()
    assert raw.startswith(ROW_HEADER + "\n")
    assert '"CI,""00100""\nx"' in raw
    header, data = read_csv(rows_file)
    assert ",".join(header) == ROW_HEADER
    assert data[0][:6] == [GOOD["eventId"], "10001", " padded ", 'CI,"00100"\nx', GOOD["eventTime"], "0"]
    assert data[1][6:] == ["", "0", "C", ""]  # null deviceId and status -> empty fields
    assert [r[1] for r in data] == ["10001", "10001", "10000", "10000"]
    header, rejects = read_csv(tmp_path / "rejects" / batch_file_name(42))
    assert ",".join(header) == REJECT_HEADER
    assert [r[:4] for r in rejects] == [["42", "2", "102", "not JSON"], ["42", "0", "103", "not UTF-8"]]
    assert rejects[0][4] == 'not "json",\nat all'
    assert rejects[1][4] == "base64://4="
    assert list(committed_files(tmp_path / "rows")) == [42]
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == [batch_file_name(42)]
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_empty_batch_writes_header_only_files(spark: SparkSession, tmp_path: Path) -> None:
    calls: list[tuple[int, BatchCounts]] = []
    sink = make_sink(tmp_path, calls)
    counts = sink.write_batch(classify(kafka_df(spark, [])), 0)
    assert counts == BatchCounts(0, 0, 0, 0)
    assert (tmp_path / "rows" / batch_file_name(0)).read_text() == ROW_HEADER + "\n"
    assert (tmp_path / "rejects" / batch_file_name(0)).read_text() == REJECT_HEADER + "\n"


def test_rerun_of_a_batch_rewrites_the_same_bytes_under_the_same_name(spark: SparkSession, tmp_path: Path) -> None:
    values = [encode(e) for e in make_events(seed=3, count=200)] + [b"[1]"]
    sink = make_sink(tmp_path, [])
    df = classify(kafka_df(spark, values))
    sink.write_batch(df, 5)
    first = {p.name: p.read_bytes() for p in (tmp_path / "rows").iterdir()}
    (tmp_path / "rows" / batch_file_name(5)).unlink()  # the merger may delete merged files
    sink.write_batch(df, 5)
    assert {p.name: p.read_bytes() for p in (tmp_path / "rows").iterdir()} == first


def test_prepare_removes_only_temp_leftovers(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / batch_file_name(1)).write_text(ROW_HEADER + "\n")
    (rows / f".{batch_file_name(2)}.tmp-123").write_text("partial")
    (tmp_path / "_tmp" / "rows-batch-x").mkdir(parents=True)
    BatchSink(rows, tmp_path / "rejects", tmp_path / "_tmp").prepare()
    assert sorted(p.name for p in rows.iterdir()) == [batch_file_name(1)]
    assert list((tmp_path / "_tmp").iterdir()) == []
