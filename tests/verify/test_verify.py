"""The reconciliation logic of `devicestream verify`, on hand-made files (no Kafka)."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import polars as pl
import pytest

from contract.csv import REJECT_COLUMNS, ROW_COLUMNS, batch_file_name
from contract.segments import SEGMENT_INDEX, Segment, SegmentIndex, segment_file
from contract.verify_report import VerifyReport
from devicestream.verify import (
    Invalid,
    TopicScan,
    _complete_records,
    _rejects,
    compare,
    expected_rows,
    format_report,
    merged_rejects_of,
    offset_ranges,
)

EVENT = {
    "eventId": "e1",
    "eventOffset": 10000,
    "eventPublisher": "device",
    "customerId": "CI00101",
    "data": {
        "devices": [
            {"deviceId": "D001", "temperature": 20, "measure": "C", "status": "SUCCESS"},
            {"deviceId": None, "temperature": 3, "measure": "C", "status": None},
        ]
    },
    "eventTime": "2026-11-28T03:33:11.123456+00:00",
}


def test_expected_rows_of_a_valid_event() -> None:
    rows = expected_rows(orjson.dumps({**EVENT, "extra": 1}))
    assert rows == [
        ["e1", "10000", "device", "CI00101", "2026-11-28T03:33:11.123456Z", "0", "D001", "20", "C", "SUCCESS"],
        ["e1", "10000", "device", "CI00101", "2026-11-28T03:33:11.123456Z", "1", "", "3", "C", ""],
    ]
    assert expected_rows(orjson.dumps({**EVENT, "data": {"devices": []}})) == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({k: v for k, v in EVENT.items() if k != "eventId"}), "missing eventId"),
        (orjson.dumps({**EVENT, "eventOffset": "x"}), "eventOffset"),
        (orjson.dumps({**EVENT, "eventTime": "yesterday"}), "eventTime"),
        (orjson.dumps({**EVENT, "data": {"devices": "many"}}), "devices"),
        (orjson.dumps({**EVENT, "data": {"devices": [{"temperature": "hot"}]}}), "temperature"),
    ],
)
def test_bad_records_are_invalid(value: bytes | None, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        expected_rows(value)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_compare_counts_each_kind_of_problem(tmp_path: Path) -> None:
    def row(offset: int, idx: int, temp: str = "20") -> list[str]:
        return _row(offset, idx, device="D001", status="SUCCESS", temp=temp)

    expected = [[*row(o, i), "0", str(o - 10000)] for o in range(10000, 10004) for i in range(2)]
    rows_csv = _write(tmp_path / "expected.csv", [*ROW_COLUMNS, "partition", "offset"], expected)
    invalid_csv = _write(
        tmp_path / "invalid.csv", ["partition", "offset", "reason"], [["0", "4", "not JSON"], ["0", "5", "not JSON"]]
    )
    merged = [
        row(10000, 0),
        row(10000, 1),
        row(10000, 1),  # a duplicate
        row(10001, 0, temp="21"),
        row(10001, 1),  # an altered value
        row(10002, 0),  # (10002, 1) missing
        row(99999, 0),
    ]  # unexpected; 10003 missing whole
    merged_csv = _write(tmp_path / "merged.csv", list(ROW_COLUMNS), merged)
    rejects = tmp_path / "rejects"
    _write(rejects / batch_file_name(0), list(REJECT_COLUMNS), [["0", "0", "4", "not JSON", "x"]])

    scan = TopicScan(records=6, valid=4, invalid=2, rows=8)
    report = compare(scan, rows_csv, invalid_csv, merged_csv, rejects)
    assert not report.ok
    assert report.rows_duplicated == 1
    assert report.rows_altered == 1
    assert report.rows_missing == 3
    assert report.rows_unexpected == 1
    assert report.records_unaccounted == 2
    # ... by name: partition 0's records 2 and 3 (eventOffsets 10002 and 10003)
    assert [r.describe() for r in report.unaccounted_ranges] == ["topic '' partition 0 offsets [2, 4)"]
    assert "not merged: topic '' partition 0 offsets [2, 4) (2 records)" in format_report(report)
    assert report.invalid_not_rejected == 1  # offset 5
    assert report.valid_rejected == 0
    assert "rows_missing" in report.examples

    clean = _write(tmp_path / "clean.csv", list(ROW_COLUMNS), [r[:-2] for r in expected])
    _write(rejects / batch_file_name(1), list(REJECT_COLUMNS), [["1", "0", "5", "not JSON", "y"]])
    assert compare(scan, rows_csv, invalid_csv, clean, rejects).ok


def test_offset_ranges_are_runs_of_consecutive_offsets_per_partition() -> None:
    records = pl.DataFrame({"partition": [1, 0, 0, 0, 1, 0], "offset": [7, 0, 1, 2, 9, 5]})
    ranges = [(r.partition, r.start, r.end) for r in offset_ranges("t", records)]
    assert ranges == [(0, 0, 3), (0, 5, 6), (1, 7, 8), (1, 9, 10)]
    assert len(offset_ranges("t", records, limit=2)) == 2
    assert offset_ranges("t", pl.DataFrame(schema={"partition": pl.Int64, "offset": pl.Int64})) == []


def _row(offset: int, idx: int, device: str = "D1", status: str = "OK", temp: str = "20") -> list[str]:
    """A merged.csv row of event `e{offset}`, reading `idx`."""
    return [
        f"e{offset}",
        str(offset),
        "device",
        "CI00101",
        "2026-11-28T03:33:11.000000Z",
        str(idx),
        device,
        temp,
        "C",
        status,
    ]


def test_a_reused_event_offset_fails_the_check(tmp_path: Path) -> None:
    expected = [[*_row(10000, 0), "0", "0"], [*_row(10000, 0), "1", "0"]]  # two records, one eventOffset
    rows_csv = _write(tmp_path / "expected.csv", [*ROW_COLUMNS, "partition", "offset"], expected)
    invalid_csv = _write(tmp_path / "invalid.csv", ["partition", "offset", "reason"], [])
    merged_csv = _write(tmp_path / "merged.csv", list(ROW_COLUMNS), [_row(10000, 0)])
    report = compare(TopicScan(records=2, valid=2, rows=2), rows_csv, invalid_csv, merged_csv, tmp_path / "rejects")
    assert report.offsets_reused == 1
    assert not report.ok
    assert "offsets_reused" in report.examples


def test_rows_and_rejects_of_records_retention_deleted_are_not_problems(tmp_path: Path) -> None:
    """Partition 0 lost offsets 0-1 (eventOffsets 10000, 10001) to retention; partition 1 is whole."""
    expected = [[*_row(10002, 0), "0", "2"], [*_row(10003, 0), "1", "0"]]
    rows_csv = _write(tmp_path / "expected.csv", [*ROW_COLUMNS, "partition", "offset"], expected)
    invalid_csv = _write(tmp_path / "invalid.csv", ["partition", "offset", "reason"], [])
    merged = [_row(10000, 0), _row(10002, 0), _row(10003, 0)]  # 10001 was rejected back then
    merged_csv = _write(tmp_path / "merged.csv", list(ROW_COLUMNS), merged)
    rejects = tmp_path / "rejects"
    _write(rejects / batch_file_name(0), list(REJECT_COLUMNS), [["0", "0", "1", "not JSON", "x"]])
    scan = TopicScan(
        records=2,
        valid=2,
        rows=2,
        end_offsets={0: 3, 1: 1},
        start_offsets={0: 2, 1: 0},
        first_event_offsets={0: 10002, 1: 10003},
    )
    report = compare(scan, rows_csv, invalid_csv, merged_csv, rejects)
    assert report.ok, report.model_dump()
    # what --json prints reads back as the same report (contract/verify_report.py), `ok` included
    printed = report.to_json()
    assert VerifyReport.model_validate_json(printed) == report and '"ok": true' in printed
    assert report.rows_before_retention == 1
    assert report.partitions_truncated == 1
    assert report.rejects_found == 0  # the reject of a deleted record is outside what was scanned

    # A merged row above the retention floor that no record explains is still unexpected.
    _write(merged_csv, list(ROW_COLUMNS), [*merged, _row(20000, 0)])
    report = compare(scan, rows_csv, invalid_csv, merged_csv, rejects)
    assert report.rows_unexpected == 1
    assert not report.ok


def test_rejects_come_from_the_mergers_rejects_csv_and_the_files_not_merged_yet(tmp_path: Path) -> None:
    header = ",".join(REJECT_COLUMNS).encode() + b"\n"
    merger = tmp_path / "merger"
    merger.mkdir()
    # Merged: offsets 1 and 2 (a CR LF inside a quoted value); the merger is appending offset 3.
    (merger / "rejects.csv").write_bytes(header + b'0,0,1,not JSON,x\n0,0,2,not JSON,"a\r\nb"\n1,0,3,not JSO')
    rejects = tmp_path / "rejects"
    _write(rejects / batch_file_name(1), list(REJECT_COLUMNS), [["1", "0", "3", "not JSON", "y"]])
    # A file of a merged batch the merger has not deleted yet: the same record twice is one reject.
    _write(rejects / batch_file_name(0), list(REJECT_COLUMNS), [["0", "0", "2", "not JSON", "a\r\nb"]])
    found = _rejects(rejects, merged_rejects_of(merger / "merged.csv")).collect()
    assert sorted(found.get_column("offset").to_list()) == [1, 2, 3]
    assert _complete_records(b'h\n1,"a\nb') == b"h\n" and _complete_records(b"h") == b""


def test_no_rejects_anywhere_is_an_empty_frame(tmp_path: Path) -> None:
    assert _rejects(tmp_path / "rejects", merged_rejects_of(tmp_path / "merged.csv")).collect().height == 0


def test_rows_of_segments_retention_removed_are_retired_not_missing(tmp_path: Path) -> None:
    def row(offset: int, idx: int) -> list[str]:
        return _row(offset, idx, device="D001", status="")

    expected = [[*row(o, i), "0", str(o - 10000)] for o in range(10000, 10004) for i in range(2)]
    rows_csv = _write(tmp_path / "expected.csv", [*ROW_COLUMNS, "partition", "offset"], expected)
    invalid_csv = _write(tmp_path / "invalid.csv", ["partition", "offset", "reason"], [])
    merger = tmp_path / "merger"
    # Segments 0 and 1 (offsets 0-2) retired; segment 2 (offset 3) retained and active.
    _write(merger / segment_file(2), list(ROW_COLUMNS), [row(10003, 0), row(10003, 1)])
    retired = [
        Segment(seq=0, file=segment_file(0), start=10, rows=4, offsets={0: (0, 1)}),
        Segment(seq=1, file=segment_file(1), start=20, rows=2, offsets={0: (2, 2)}),
    ]
    active = Segment(seq=2, file=segment_file(2), start=30, rows=2, offsets={0: (3, 3)})

    def index(rows_retired: int) -> None:
        doc = SegmentIndex(generation="g", segments=[active], retired=retired, rows_retired=rows_retired)
        (merger / SEGMENT_INDEX).write_text(doc.model_dump_json())

    index(6)
    scan = TopicScan(records=4, valid=4, rows=8)
    report = compare(scan, rows_csv, invalid_csv, merger / "merged.csv", tmp_path / "rejects")
    assert report.ok and report.rows_retired == 6 and report.rows_missing == 0 and report.rows_in_merged == 2
    # More rows in the retired bounds than retention removed: the others are missing.
    index(4)
    report = compare(scan, rows_csv, invalid_csv, merger / "merged.csv", tmp_path / "rejects")
    assert not report.ok and report.rows_retired == 4 and report.rows_missing == 2
