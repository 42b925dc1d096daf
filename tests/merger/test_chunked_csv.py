"""services.merger.chunked_csv: the committed rows of a CSV file read in bounded chunks (pure logic
on real files, no service)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from services.merger.chunked_csv import first_record_end, record_blocks, scan_committed
from services.merger.device_tracker import row_end

SCHEMA = pl.Schema({"a": pl.String, "b": pl.String})
#: A quoted field with a newline, a doubled quote and a comma: one record over three lines.
ROWS = [("1", "plain"), ("2", 'say ""hi""\nand, bye\n'), ("3", "x"), ("4", "last")]


def csv_text(rows: list[tuple[str, str]]) -> bytes:
    out = "a,b\n"
    for a, b in rows:
        out += f'{a},"{b}"\n' if '"' in b or "\n" in b or "," in b else f"{a},{b}\n"
    return out.encode()


def test_first_record_end_ignores_newlines_inside_quotes():
    assert first_record_end(b"1,x\n2,y\n3,") == 4
    assert first_record_end(b'1,"a\nb"\n2,y\n') == 8
    assert first_record_end(b'1,"a\nb') == 0


#: Quote-free pieces (cut at their last newline, the quick way) before and after a quoted field
#: whose newlines a piece may end inside.
LONG_ROWS = [(str(i), "p") for i in range(12)] + [("12", "a\nb\nc\nd\ne\nf")] + [(str(i), "q") for i in range(13, 20)]


@pytest.mark.parametrize(
    ("rows", "chunk"), [(ROWS, c) for c in (1, 3, 7, 16, 4096)] + [(LONG_ROWS, c) for c in (16, 40, 100)]
)
def test_blocks_hold_whole_records_whatever_the_chunk_size(tmp_path: Path, rows: list[tuple[str, str]], chunk: int):
    path = tmp_path / "m.csv"
    path.write_bytes(csv_text(rows))
    blocks = list(record_blocks(path, chunk))
    assert b"".join(blocks) == csv_text(rows)[len(b"a,b\n") :]
    for b in blocks:
        assert row_end(b, len(b)) == len(b)


@pytest.mark.parametrize("chunk", [5, 64, 1 << 20])
def test_scan_stops_at_the_committed_rows_and_matches_polars(tmp_path: Path, chunk: int):
    path = tmp_path / "m.csv"
    path.write_bytes(csv_text(ROWS) + b'5,"half a row being appen')  # an uncommitted tail
    got = scan_committed(path, 3, SCHEMA, chunk_bytes=chunk).collect()
    want = pl.read_csv(csv_text(ROWS), schema=SCHEMA).head(3)
    assert got.equals(want)
    filtered = scan_committed(path, 4, SCHEMA, chunk_bytes=chunk).filter(pl.col("a") > "2").select("b").collect()
    assert filtered["b"].to_list() == ["x", "last"]


def test_a_last_row_without_newline_is_read(tmp_path: Path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"a,b\n1,x\n2,y")
    assert scan_committed(path, 2, SCHEMA, chunk_bytes=4).collect()["b"].to_list() == ["x", "y"]


def test_check_runs_before_each_chunk_and_stops_the_scan(tmp_path: Path):
    path = tmp_path / "m.csv"
    path.write_bytes(csv_text(ROWS))
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("reader gone")

    with pytest.raises(pl.exceptions.ComputeError, match="reader gone"):
        scan_committed(path, 4, SCHEMA, check, chunk_bytes=8).collect()
