"""The last rows of merged.csv from a window of its last bytes (pure): the window may start inside
a quoted field (merged rows keep CR/LF byte for byte), so rows are found by counting quotes, never
by splitting on newlines."""

from __future__ import annotations

import csv
import io


def first_row_start(data: bytes) -> int | None:
    """Where the first whole row of `data` starts: just past the first newline outside quotes. `data`
    ends at a row boundary (a committed size), so the window starts inside a quoted field exactly
    when it holds an odd number of '"' (RFC 4180 doubles a quote inside a field). None: no row
    boundary in the window."""
    inside = data.count(b'"') % 2
    pos = 0
    while (nl := data.find(b"\n", pos)) >= 0:
        inside ^= data.count(b'"', pos, nl) % 2
        if not inside:
            return nl + 1
        pos = nl + 1
    return None


def tail_rows(window: bytes, n: int) -> list[list[str]]:
    """The last `n` rows of `window` (the last bytes of merged.csv, or all of it), as fields. The
    first (partial) row is dropped: the header when the window is the whole file."""
    start = first_row_start(window)
    if start is None:
        return []
    text = window[start:].decode("utf-8", errors="replace")
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    return rows[-n:]
