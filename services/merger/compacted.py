"""Reading a segment whichever file holds it (contract.segments, contract.compacted): its CSV file, or,
once compaction removed that, its Parquet copy rendered back to the same CSV bytes. A compacted
segment renders in runs of GROUP_ROWS rows whose CSV lengths the state records (`group_bytes`), so a
byte range (a Range request, the device figures reading on from a position) renders only the runs it
covers: memory stays bounded by one run whatever the segment's size."""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import NamedTuple

import polars as pl

from contract.compacted import render_csv
from contract.segments import GROUP_ROWS, Segment
from services.merger.state import HEADER_LINE


class Part(NamedTuple):
    """A piece of the merged stream as served: `length` bytes from `offset` of a segment's CSV file;
    `group_bytes` when the file is a Parquet copy (rendered back to those bytes)."""

    path: Path
    offset: int
    length: int
    group_bytes: tuple[int, ...] | None = None


class SegmentReader:
    """A segment's CSV bytes (header line included) by position: the file itself, or its Parquet copy
    rendered. The file is opened at once: one removed meanwhile (retention) stays readable to it."""

    def __init__(self, path: Path, group_bytes: tuple[int, ...] | list[int] | None = None) -> None:
        self.name = str(path)
        self._f = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._groups = None if group_bytes is None else tuple(group_bytes)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        if self._groups is not None:
            starts = [len(HEADER_LINE)]
            for n in self._groups:
                starts.append(starts[-1] + n)
            self._starts = starts
            # (the file by its descriptor: polars reads the file this reader opened, even once unlinked)
            proc = Path(f"/proc/self/fd/{self._f.fileno()}")
            self._source = str(proc) if proc.exists() else str(path)

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def fileno(self) -> int:
        return self._f.fileno()

    def seek(self, pos: int) -> None:
        self._pos = pos

    def read(self, n: int) -> bytes:
        data = self.pread(n, self._pos)
        self._pos += len(data)
        return data

    def pread(self, n: int, pos: int) -> bytes:
        """Up to `n` bytes from `pos` (fewer at the end)."""
        if self._groups is None:
            return os.pread(self._f.fileno(), n, pos)
        out: list[bytes] = []
        end = self._starts[-1]
        while n > 0 and pos < end:
            if pos < len(HEADER_LINE):
                piece = HEADER_LINE[pos : pos + n]
            else:
                i = bisect.bisect_right(self._starts, pos) - 1
                piece = self._group(i)[pos - self._starts[i] :][:n]
            if not piece:
                break
            out.append(piece)
            pos += len(piece)
            n -= len(piece)
        return b"".join(out)

    def _group(self, i: int) -> bytes:
        if self._cached is None or self._cached[0] != i:
            rows = pl.scan_parquet(self._source).slice(i * GROUP_ROWS, GROUP_ROWS).collect()
            self._cached = (i, render_csv(rows))
        return self._cached[1]


def open_segment(g: Segment, merger_dir: Path) -> SegmentReader:
    """A reader of `g`'s CSV bytes from the file that holds its rows now. Raises FileNotFoundError."""
    if g.csv_kept or g.parquet is None:
        return SegmentReader(g.path(merger_dir))
    return SegmentReader(merger_dir / g.parquet, g.group_bytes)


def open_part(part: Part) -> SegmentReader:
    return SegmentReader(part.path, part.group_bytes)


def segment_part(g: Segment, merger_dir: Path, offset: int, length: int) -> Part:
    """The bytes [offset, offset + length) of `g`'s CSV, from the file that holds its rows now."""
    if g.csv_kept or g.parquet is None:
        return Part(g.path(merger_dir), offset, length)
    return Part(merger_dir / g.parquet, offset, length, tuple(g.group_bytes))
