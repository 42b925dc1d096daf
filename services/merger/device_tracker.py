"""Keeps the DeviceBook up to date with merged.csv, crash-safely, without touching the merge engine:
it follows the committed size in the merger's state and reads only the bytes committed since it last
looked (whole rows, appended once and never changed), so each step costs in proportion to what was
merged. A snapshot of the book, tagged with the generation and the committed size it covers, is
written every `devices_snapshot_interval_s`; on start the tracker loads it and reads on from that
size, so after a crash the figures again match merged.csv exactly (no row counted twice or missed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, Histogram
from pydantic import ValidationError

from contract.devices import DevicesResponse
from contract.files import atomic_write_json
from services.merger.compacted import SegmentReader, open_segment
from services.merger.device_snapshot import DevicesSnapshot
from services.merger.devices import DeviceBook, now_us, parse_rows
from services.merger.state import HEADER_LINE, MergerState

log = logging.getLogger(__name__)

#: Catch-up reads at most this many bytes of merged.csv at a time (memory bounded on a big file).
READ_CHUNK: Final = 8 * 1024 * 1024


def row_end(data: bytes | bytearray, before: int) -> int:
    """The end (just past the newline) of the last whole CSV row in data[:before], 0 if none. `data`
    starts at a row boundary; a newline inside a quoted field (merged rows keep CR/LF byte for byte)
    is not a row end: one is where the count of '"' before it is even (RFC 4180 doubles quotes).
    Without any quote (the usual piece; one memchr), the last newline is the row end."""
    if data.find(b'"', 0, before) < 0:
        return data.rfind(b"\n", 0, before) + 1
    cut = data.rfind(b"\n", 0, before)
    while cut >= 0:
        if data.count(b'"', 0, cut) % 2 == 0:
            return cut + 1
        cut = data.rfind(b"\n", 0, cut)
    return 0


def read_whole_lines(
    path: Path | SegmentReader, start: int, end: int, chunk: int = READ_CHUNK
) -> Iterator[tuple[int, bytes]]:
    """Chunks of path[start:end] that each end at the end of a CSV row, one at a time: (end offset,
    bytes), at most `chunk` bytes each (or one whole row when longer). `start` and `end` must be row
    boundaries (a committed size is). `path` may be an open reader (a compacted segment's: closed here)."""
    with path if isinstance(path, SegmentReader) else SegmentReader(path) as f:
        pos = start
        while pos < end:
            data = f.pread(min(chunk, end - pos), pos)
            if not data:
                raise OSError(f"{f.name} ends at {pos}, before its committed size {end}")
            cut = row_end(data, len(data)) if pos + len(data) < end else len(data)
            if cut == 0:  # one row longer than the chunk: read on to its end
                rest = f.pread(end - pos, pos)
                cut = row_end(rest, len(rest)) or len(rest)
                data = rest
            yield pos + cut, data[:cut]
            pos += cut


def read_merged_lines(state: MergerState, merger_dir: Path, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """read_whole_lines over the merged stream (contract.segments): positions [start, end) of the
    data lines of every segment ever written, read from the retained ones (what retention removed
    is skipped). With one segment, merged.csv's own offsets."""
    header = len(HEADER_LINE)
    for g in state.retained:
        size = state.committed_size if g.seq == state.active.seq else g.size
        g_end = g.start + size - header
        lo, hi = max(start, g.start), min(end, g_end)
        if lo >= hi:
            continue
        for pos, data in read_whole_lines(open_segment(g, merger_dir), header + lo - g.start, header + hi - g.start):
            yield g.start + pos - header, data


class DeviceTracker:
    def __init__(
        self,
        merged_csv: Path,
        snapshot_file: Path,
        state: Callable[[], MergerState | None],
        *,
        window_s: int,
        max_devices: int,
        snapshot_interval_s: float,
        poll_interval_s: float = 0.1,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.merged_csv = merged_csv
        self.snapshot_file = snapshot_file
        self.state = state
        self.window_s = window_s
        self.max_devices = max_devices
        self.snapshot_interval_s = snapshot_interval_s
        self.poll_interval_s = poll_interval_s
        self.book = DeviceBook(window_s, max_devices)
        self.generation: str | None = None
        self.covered_size = len(HEADER_LINE)
        self._saved_size = -1
        self._lock = threading.Lock()
        self._stop = asyncio.Event()
        registry = registry if registry is not None else CollectorRegistry()  # never the global one
        self.update_duration = Histogram(
            "merger_devices_update_seconds",
            "Time to fold newly committed rows into the device figures (one step of catching up).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        behind = Gauge(
            "merger_devices_behind_bytes",
            "Committed bytes of merged.csv not yet in the device figures.",
            registry=registry,
        )
        behind.set_function(self._behind)

    def _behind(self) -> float:
        state = self.state()
        return 0.0 if state is None else float(max(0, state.merged_size - self.covered_size))

    # -- answers ----------------------------------------------------------------------------------

    def response(self, device_id: str | None = None, *, limit: int = 100, after: str | None = None) -> DevicesResponse:
        """One page of the figures (or one device's), the recent window ending now."""
        state = self.state()
        committed = 0 if state is None else state.merged_size
        retired = 0 if state is None else state.rows_retired
        with self._lock:
            return self.book.response(
                self.covered_size, committed, now_us(), only=device_id, limit=limit, after=after, rows_retired=retired
            )

    # -- keeping up -------------------------------------------------------------------------------

    def load(self, state: MergerState) -> None:
        """Take the snapshot if it belongs to this merged.csv and is not ahead of it; else start over."""
        book, covered = DeviceBook(self.window_s, self.max_devices), len(HEADER_LINE)
        try:
            doc = DevicesSnapshot.model_validate_json(self.snapshot_file.read_bytes())
            if doc.generation == state.generation and doc.covered_size <= state.merged_size:
                candidate = DeviceBook.from_doc(doc.book, self.max_devices)
                if candidate.window_s == self.window_s:
                    book, covered = candidate, doc.covered_size
        except FileNotFoundError:
            pass
        except (OSError, ValidationError) as e:
            log.warning(
                "device snapshot unusable; recounting", extra={"path": str(self.snapshot_file), "error": repr(e)}
            )
        with self._lock:
            self.book, self.covered_size, self.generation = book, covered, state.generation
        self._saved_size = covered if covered > len(HEADER_LINE) else -1
        log.info(
            "device figures loaded",
            extra={"covered_size": covered, "committed_size": state.merged_size, "devices": len(book.total)},
        )

    def catch_up(self, state: MergerState) -> int:
        """Add the rows committed since covered_size; returns the bytes read."""
        if state.generation != self.generation or state.merged_size < self.covered_size:
            self.load(state)
        start, end = self.covered_size, state.merged_size
        if end <= start:
            return 0
        for chunk_end, data in read_merged_lines(state, self.merged_csv.parent, start, end):
            with self.update_duration.time():
                df = parse_rows(data)
                with self._lock:
                    self.book.apply(df, now_us())
                    self.covered_size = chunk_end
        return end - start

    def save(self) -> None:
        with self._lock:
            doc = DevicesSnapshot(generation=self.generation, covered_size=self.covered_size, book=self.book.to_doc())
        atomic_write_json(self.snapshot_file, doc.model_dump(mode="json"))
        self._saved_size = doc.covered_size

    async def run(self) -> None:
        """Follow the committed size until stop(); snapshot now and then and at the end. An error
        (disk full while saving...) is logged once and retried every snapshot interval."""
        last_save = time.monotonic()
        last_error: str | None = None
        try:
            while not self._stop.is_set():
                delay = self.poll_interval_s
                state = self.state()
                if state is not None:
                    try:
                        await asyncio.to_thread(self.catch_up, state)
                        due = time.monotonic() - last_save >= self.snapshot_interval_s
                        if due and self._saved_size != self.covered_size:
                            last_save = time.monotonic()  # a failing save is retried next interval
                            await asyncio.to_thread(self.save)
                        if last_error is not None:
                            log.info("device figures updating again", extra={"error": last_error})
                            last_error = None
                    except Exception as e:  # never stop following
                        if repr(e) != last_error:
                            log.error("device figures could not be updated", extra={"error": repr(e)})
                        last_error = repr(e)
                        delay = max(delay, self.snapshot_interval_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            if self.generation is not None and self._saved_size != self.covered_size:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self.save)

    def stop(self) -> None:
        self._stop.set()
