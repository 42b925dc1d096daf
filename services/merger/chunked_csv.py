"""The committed rows of one CSV file as a polars LazyFrame read in bounded chunks.

`pl.scan_csv` memory-maps the whole file: every page it has read stays mapped in the process, so
the resident memory of a query grows with the file (1.1 GB for a 1 GB merged.csv) although polars
itself holds little. This source reads the file with plain reads of `chunk_bytes`, cut at the last
record end (a newline outside quotes), and parses each piece with polars: memory stays a few chunks
whatever the size of the file. It stops after the first `rows` data rows (the committed prefix), so
bytes appended meanwhile, or a row cut in the middle after them, are never part of an answer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import polars as pl
from polars.io.plugins import register_io_source

from services.merger.device_tracker import row_end

#: Bytes per read: the parsed piece is about as big again, the answer's filter runs on it.
CHUNK_BYTES: Final = 8 * 1024 * 1024


def first_record_end(buf: bytes) -> int:
    """Index just past the first record end in `buf` (which starts at a record's start), 0 if none:
    a newline outside quotes (device_tracker.row_end finds the last one the same way)."""
    pos = 0
    while (nl := buf.find(b"\n", pos)) >= 0:
        if buf.count(b'"', 0, nl) % 2 == 0:
            return nl + 1
        pos = nl + 1
    return 0


def record_blocks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The data records of `path` (its header record skipped) in blocks of whole records of about
    `chunk_bytes` each; a last record without a newline at the end of the file comes last.

    Each block is found in one reused buffer, then read again at its exact length (from the page
    cache): slicing or joining 8 MiB `bytes` cost more than the parse of the block did."""
    with open(path, "rb", buffering=0) as f:
        fd, pos, probe = f.fileno(), 0, bytearray(chunk_bytes)
        header = True
        while size := os.preadv(fd, [probe], pos):
            if header:
                start = first_record_end(bytes(probe[:size]))
                if start == 0 and size == len(probe):  # the header is longer than the buffer
                    probe = bytearray(2 * len(probe))
                    continue
                pos, header = pos + (start or size), False
                continue
            end = row_end(probe, size)
            if end == 0:
                if size == len(probe):  # no whole record yet (a very long field): a bigger buffer
                    probe = bytearray(2 * len(probe))
                    continue
                end = size  # the end of the file: its last record has no newline (or is being appended)
            block = os.pread(fd, end, pos)
            if not block:
                return
            yield block
            pos += len(block)


def scan_committed(
    path: Path,
    rows: int,
    schema: pl.Schema,
    check: Callable[[], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> pl.LazyFrame:
    """The first `rows` data rows of the CSV file `path` (columns `schema`, all read as written),
    read chunk by chunk; `check` runs before each chunk (it raises to stop the query)."""
    names = list(schema.names())

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        left = rows if n_rows is None else min(rows, n_rows)
        wanted = names if with_columns is None else list(with_columns)
        if predicate is not None:  # the filter's columns too, in the file's order
            used = set(wanted) | set(predicate.meta.root_names())
            wanted = [n for n in names if n in used]
        indexes = [names.index(n) for n in wanted]  # by position: the blocks have no header
        blocks = record_blocks(path, chunk_bytes)

        def read_next() -> pl.DataFrame | None:
            block = next(blocks, None)
            return None if block is None else pl.read_csv(block, has_header=False, schema=schema, columns=indexes)

        # One chunk is read and parsed (polars releases the GIL) while the previous one is filtered
        # and handed on: at most two chunks in memory.
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="query-read") as pool:
                try:
                    nxt = pool.submit(read_next)
                    while left > 0:
                        if check is not None:
                            check()
                        df = nxt.result()
                        if df is None:
                            return
                        nxt = pool.submit(read_next)
                        df = df.head(left)
                        left -= df.height
                        lf = df.lazy()  # lazily: the optimised filter is several times faster than an eager one
                        if predicate is not None:
                            lf = lf.filter(predicate)
                        if with_columns is not None:
                            lf = lf.select(with_columns)
                        yield lf.collect()
                finally:
                    nxt.cancel()
        finally:
            blocks.close()  # (its file; the worker is done once the pool is shut down)

    return register_io_source(source, schema=schema)
