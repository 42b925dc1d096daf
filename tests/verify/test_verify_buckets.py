"""verify's comparison split into buckets of keys (devicestream.verify_compare) reports exactly what
one bucket reports, with every kind of problem present; on hand-made files (no Kafka)."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from contract.compacted import TEXT_SCHEMA, typed
from contract.csv import REJECT_COLUMNS, ROW_COLUMNS, batch_file_name
from contract.segments import SEGMENT_INDEX, Segment, SegmentIndex, parquet_file, segment_file
from contract.verify_report import VerifyReport
from devicestream import verify_chunks, verify_compare
from devicestream.merged_files import _complete_records, merged_files
from devicestream.verify import TopicScan, compare, offset_ranges
from devicestream.verify_chunks import RowsWriter
from tests.verify.test_verify import _write


def _rows(event_offset: int | str, temp: str = "20") -> list[list[str]]:
    """The two rows of the event with `event_offset`."""
    head = [f"e{event_offset}", str(event_offset), "device", "CI00101", "2026-11-28T03:33:11.000000Z"]
    return [[*head, str(i), "D001", temp, "C", "SUCCESS"] for i in range(2)]


def _sorted_examples(report: VerifyReport) -> dict[str, list[Any]]:
    return {k: sorted(v, key=orjson.dumps) for k, v in report.examples.items()}


@pytest.fixture
def every_problem(tmp_path: Path) -> tuple[TopicScan, dict[str, Any]]:
    """Partition 0 offsets 0-13 (eventOffsets 10000 + 2 * offset; 12 and 13 invalid); partition 1
    offsets 2-12 (10001 + 2 * offset; retention deleted 0-1; 12 invalid). The merger kept its rows in
    two segments (the first compacted to Parquet) and retention removed a third (partition 0
    offsets 9-10)."""
    records = {(0, o): 10000 + 2 * o for o in range(12)} | {(1, o): 10001 + 2 * o for o in range(2, 12)}
    records[(1, 11)] = records[(0, 3)]  # a reused eventOffset
    expected = [[*r, str(p), str(o)] for (p, o), eo in records.items() for r in _rows(eo)]
    rows_csv = [
        _write(
            tmp_path / f"expected-{p}.csv", [*ROW_COLUMNS, "partition", "offset"], [r for r in expected if r[-2] == p]
        )
        for p in ("0", "1")
    ]
    invalid = [["0", "12", "not JSON"], ["0", "13", "not JSON"], ["1", "12", "not JSON"]]
    invalid_csv = _write(tmp_path / "invalid.csv", ["partition", "offset", "reason"], invalid)

    gone = {(0, 5), (0, 7), (1, 9), (1, 10), (0, 9), (0, 10)}  # 5 rejected, 9-10 retired, the others missing
    merged: list[list[str]] = []
    for (p, o), eo in records.items():
        if (p, o) in gone or (p, o) == (1, 11):
            continue
        rows = _rows(eo, temp="21" if (p, o) == (0, 2) else "20")  # (0, 2): altered
        if (p, o) == (0, 4):
            rows[1][6] = 'D,"0\r\n01'  # altered too (a value CSV quotes, with a line end in it)
        merged += rows[:1] if (p, o) == (0, 8) else rows  # (0, 8): one row missing
        if (p, o) == (0, 1):
            merged += [rows[0], rows[0]]  # duplicated twice
    merged += _rows(10001) + _rows(10003)  # records retention deleted: before retention
    merged += _rows(99999) + _rows("x") + [_rows("")[0], _rows(" 10000")[0]]  # unexpected
    merger = tmp_path / "merger"
    half = len(merged) // 2  # (the first half: the rows of records; the other: the unexpected ones too)
    # Segment 0 compacted, its CSV removed: its rows are read from its Parquet copy.
    first = pl.DataFrame(merged[:half], schema=TEXT_SCHEMA, orient="row")
    (merger / parquet_file(0)).parent.mkdir(parents=True)
    typed(first.lazy()).collect().write_parquet(merger / parquet_file(0))
    _write(merger / segment_file(1), list(ROW_COLUMNS), merged[half:])
    compacted = {"parquet": parquet_file(0), "csv_kept": False}
    index = SegmentIndex(
        generation="g",
        segments=[
            Segment(seq=0, file=segment_file(0), start=10, rows=half, offsets={0: (0, 11), 1: (2, 11)}, **compacted),
            Segment(seq=1, file=segment_file(1), start=20, rows=len(merged) - half, offsets={0: (0, 11)}),
        ],
        retired=[Segment(seq=2, file=segment_file(2), start=5, rows=3, offsets={0: (9, 10)})],
        rows_retired=3,  # one row fewer than the retired bounds hold: that one is missing
    )
    (merger / SEGMENT_INDEX).write_text(index.model_dump_json())
    assert [p.suffix for p in merged_files(merger / "merged.csv").paths] == [".parquet", ".csv"]
    rejects = tmp_path / "rejects"
    reject_rows = [
        ["0", "0", "12", "not JSON", "x"],
        ["0", "0", "5", "not JSON", "x"],
        ["0", "1", "1", "not JSON", "x"],
    ]
    _write(rejects / batch_file_name(0), list(REJECT_COLUMNS), reject_rows)
    scan = TopicScan(
        records=27,
        valid=24,
        invalid=3,
        rows=48,
        end_offsets={0: 14, 1: 13},
        start_offsets={0: 0, 1: 2},
        first_event_offsets={0: 10000, 1: 10005},
    )
    args = {
        "rows_csv": rows_csv,
        "invalid_csv": invalid_csv,
        "merged_csv": merger / "merged.csv",
        "rejects_dir": rejects,
        "examples": 50,
    }
    return scan, args


@pytest.mark.parametrize(("buckets", "chunk"), [(2, 1 << 20), (3, 1 << 20), (16, 1 << 20), (3, 100)])
def test_buckets_report_what_one_bucket_reports(
    buckets: int, chunk: int, every_problem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan, args = every_problem
    monkeypatch.setattr(verify_compare, "CHUNK_BYTES", chunk)  # (100: the files read a few rows at a time)
    one = compare(scan, **args, buckets=1)
    for name in (*VerifyReport.PROBLEMS, "rows_before_retention", "rows_retired", "partitions_truncated"):
        assert getattr(one, name) > 0, name  # (the case has every kind)
    assert one.rows_unexpected == 6 and one.rows_before_retention == 4 and one.rows_duplicated == 2
    assert one.rows_altered == 3  # (0, 2) both rows, (0, 4) one
    assert [r.describe() for r in one.unaccounted_ranges] == [
        "topic '' partition 0 offsets [7, 9)",
        "topic '' partition 1 offsets [9, 11)",
    ]

    split = compare(scan, **args, buckets=buckets, workdir=tmp_path)
    assert split.model_dump(exclude={"examples"}) == one.model_dump(exclude={"examples"})
    assert _sorted_examples(split) == _sorted_examples(one)
    assert not list(tmp_path.glob("verify-buckets-*"))  # (its files removed)

    default = compare(scan, **args)  # (small: one bucket)
    assert default.model_dump(exclude={"examples"}) == one.model_dump(exclude={"examples"})


def test_buckets_of_a_clean_run_are_clean(every_problem, tmp_path: Path) -> None:
    scan, args = every_problem
    expected = pl.concat(pl.read_csv(p, infer_schema=False) for p in args["rows_csv"]).filter(
        ~((pl.col("partition") == "1") & (pl.col("offset") == "11"))  # (not the reused eventOffset)
    )
    rows_csv = _write(tmp_path / "clean" / "expected.csv", expected.columns, expected.rows())
    merged_csv = _write(
        tmp_path / "clean" / "merged.csv", list(ROW_COLUMNS), expected.drop("partition", "offset").rows()
    )
    invalid = _write(tmp_path / "clean" / "invalid.csv", ["partition", "offset", "reason"], [])
    for buckets in (1, 4):
        report = compare(scan, rows_csv, invalid, merged_csv, tmp_path / "no-rejects", buckets=buckets)
        assert report.ok, report.model_dump()
        assert report.rows_in_merged == 42 and report.examples == {} and report.unaccounted_ranges == []


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_a_csv_read_in_pieces_is_the_csv_read_whole(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "merged.csv"
    rows = [_rows(10000)[0], [*_rows(10001)[0][:6], 'a,"b\nc', "", "", '""'], _rows(10002)[1]]
    _write(path, list(ROW_COLUMNS), rows)
    path.write_bytes(path.read_bytes().rstrip(b"\r\n"))  # (the last line without its line end)
    monkeypatch.setattr(verify_compare, "CHUNK_BYTES", chunk)
    pieces = list(verify_compare._csv_pieces(path, TEXT_SCHEMA))
    assert pl.concat(pieces).equals(pl.read_csv(path, schema=TEXT_SCHEMA))
    assert pl.concat(pieces).height == 3 and pieces[-1]["deviceIndex"].to_list()[-1] == "1"


def test_whole_records_end_where_the_rejects_reader_cuts() -> None:
    """Each chunk is cut where merged_files._complete_records cuts rejects.csv (counted in one pass)."""
    rng = random.Random(1)
    for _ in range(5000):
        buf = bytes(rng.choice(b'ab"\n,') for _ in range(rng.randint(0, 24)))
        assert verify_compare._whole_records(buf) == len(_complete_records(buf)), buf


def test_unaccounted_ranges_read_a_window_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    records = pl.DataFrame({"partition": [1, 0, 0, 0, 1, 0, 0, 0, 2, 2], "offset": [7, 0, 1, 2, 9, 5, 6, 3, 30, 31]})
    monkeypatch.setattr(verify_compare, "RANGE_WINDOW", 3)
    for limit in (1, 2, 3, 4, 20):
        windowed = verify_compare.first_offset_ranges("t", records.lazy(), limit)
        assert windowed == offset_ranges("t", records, limit), limit
    assert [(r.partition, r.start, r.end) for r in verify_compare.first_offset_ranges("t", records.lazy())] == [
        (0, 0, 4),
        (0, 5, 7),
        (1, 7, 8),
        (1, 9, 10),
        (2, 30, 32),
    ]


def test_chunks_compare_as_the_plain_csv_does(every_problem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The case with every kind of problem (tests/verify/test_verify_buckets.py), its expected rows
    as small zstd chunks: the same report in one bucket and in three."""
    scan, args = every_problem
    monkeypatch.setattr(verify_chunks, "CHUNK_TEXT_BYTES", 300)
    chunks: list[Path] = []
    for k, plain in enumerate(args["rows_csv"]):
        header, *records = csv.reader(io.StringIO(plain.read_text(), newline=""))
        w = RowsWriter(tmp_path / f"expected-{k}", _csv_line(header))
        for record in records:  # (a record's lines always in one chunk, as the scan writes them)
            w.write(_csv_line(record))
        chunks += w.close()
    assert len(chunks) > len(args["rows_csv"])
    for buckets in (1, 3):
        plain = compare(scan, **args, buckets=buckets, workdir=tmp_path)
        zst = compare(scan, **{**args, "rows_csv": chunks}, buckets=buckets, workdir=tmp_path)
        assert zst.model_dump(exclude={"examples"}) == plain.model_dump(exclude={"examples"})
        assert _sorted_examples(zst) == _sorted_examples(plain)


def _csv_line(fields: list[str]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerow(fields)
    return out.getvalue().encode()
