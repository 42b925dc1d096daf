"""/merged/tail's rows from the last bytes of merged.csv (pure): quoted fields with CR/LF, doubled
quotes, a window that starts inside a quoted field or inside a multi-byte character."""

from __future__ import annotations

import csv
import io

from services.gateway.tail import tail_rows

HEADER = b"eventId,eventTime,deviceId,note\n"
ROWS = [
    ["e1", "2026-11-28T03:33:11.000000Z", "D001", "plain"],
    ["e2", "9999-12-31T23:59:59.999999Z", "D002", 'line\nbreak and ""quotes"" and \r\n CR LF'],
    ["e3", "0001-01-01T00:00:00.000000Z", "", ""],
    ["e4", "+10000-01-01T00:59:59.000000Z", "D\u00e9", "\n\n\n"],
    ["e5", "2026-11-28T03:33:11.000000Z", "D005", "x" * 300],
]


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


DATA = HEADER + csv_bytes(ROWS)


def test_every_window_gives_whole_rows_only() -> None:
    """Wherever the window starts (each byte of the file), the rows found are the last ones of the
    file, each whole, and every row that starts inside the window is there."""
    row_starts = [len(HEADER) + len(csv_bytes(ROWS[:i])) for i in range(len(ROWS))]
    for start in range(len(DATA)):
        got = tail_rows(DATA[start:], 10)
        assert got == ROWS[len(ROWS) - len(got) :], start
        assert len(got) == sum(1 for s in row_starts if s > start), start


def test_the_whole_file_drops_the_header_and_keeps_the_last_n() -> None:
    assert tail_rows(DATA, 2) == ROWS[-2:]
    assert tail_rows(DATA, 100) == ROWS
    assert tail_rows(HEADER, 5) == []
    assert tail_rows(b"", 5) == []


def test_no_row_boundary_in_the_window() -> None:
    assert tail_rows(b"x" * 100 + b"\n", 3) == []  # the one row is cut at the window start
    assert tail_rows(b'a,"\n",b\n', 3) == []  # one row, starting before the window
