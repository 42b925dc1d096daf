"""Compaction of closed segments (contract.segments, contract.compacted), off the commit path.

A background thread (one, owned by the merge engine) copies a closed segment to Parquet: a streaming
scan of its CSV, typed, sunk into `.merged-<seq>.parquet.tmp`; then the copy is rendered back, run by
run, and compared with the CSV byte for byte (a segment whose rows do not render back exactly, e.g.
a field quoted where it need not be, keeps its CSV only and is not tried again in this run); then the
temp file is fsynced and renamed to `segments/merged-<seq>.parquet` and the folder fsynced. Nothing
in the state has changed yet: the merge thread adopts the copy between two commits, in a commit of
its own (the journal line names the Parquet file, its runs' CSV lengths and whether the CSV is
kept), and only after that commit removes the CSV (MERGER_KEEP_SEGMENT_CSV=false).

A SIGKILL at any point: before the journal line the state does not list the copy, and the start
removes the temp file or the unlisted Parquet file (the segment is compacted again); after it, the
copy is the segment's, and a CSV the state says is removed is removed on start. Appends never wait
for a compaction: the merge thread only looks whether one finished. Nor does a stop: the compaction
running then gives up between two chunks (CompactionStopped, its temp file removed) and is done
again at the next start."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from contract.compacted import TEXT_SCHEMA, render_csv, typed
from contract.files import fsync_dir
from contract.segments import GROUP_ROWS, Segment, parquet_file
from services.merger.query import checked_batches
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE, MergerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compacted:
    """A finished compaction: the Parquet copy of segment `seq` is in place (not committed yet), with
    the CSV lengths of its runs; `group_bytes` None when the rows do not render back exactly."""

    seq: int
    group_bytes: tuple[int, ...] | None


class CompactionStopped(Exception):
    """The merger is stopping: the compaction gave up (its temp file removed)."""


def _check(stop: threading.Event | None, g: Segment) -> None:
    if stop is not None and stop.is_set():
        raise CompactionStopped(f"segment {g.seq}: the merger is stopping")


def temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def rendered_groups(parquet: Path, csv: Path, g: Segment, stop: threading.Event | None = None) -> list[int] | None:
    """The CSV lengths of the copy's runs of GROUP_ROWS rows when, rendered one after the other, they
    are the CSV's data lines exactly (None otherwise). Memory: one run. Raises CompactionStopped
    between runs once `stop` is set."""
    groups: list[int] = []
    lf = pl.scan_parquet(parquet)
    with open(csv, "rb") as f:
        if f.read(len(HEADER_LINE)) != HEADER_LINE:
            return None
        for start in range(0, g.rows, GROUP_ROWS):
            _check(stop, g)
            data = render_csv(lf.slice(start, GROUP_ROWS).collect())
            if not data or f.read(len(data)) != data:
                return None
            groups.append(len(data))
        if f.tell() != g.size or lf.select(pl.len()).collect().item() != g.rows:
            return None
    return groups


def compact_segment(merger_dir: Path, g: Segment, stop: threading.Event | None = None) -> Compacted:
    """Write `g`'s Parquet copy (temp, check, fsync, rename, fsync the folder). Raises OSError, or
    CompactionStopped once `stop` is set (the temp file removed)."""
    src, out = g.path(merger_dir), merger_dir / parquet_file(g.seq)
    tmp = temp_of(out)
    try:
        try:
            lf = typed(pl.scan_csv(src, schema=TEXT_SCHEMA, n_rows=g.rows, low_memory=True))
            lf = checked_batches(lf, None if stop is None else lambda: _check(stop, g))
            lf.sink_parquet(tmp, compression="zstd", row_group_size=GROUP_ROWS, engine="streaming")
            groups = rendered_groups(tmp, src, g, stop)
        except pl.exceptions.PolarsError as e:  # a value that does not parse as its type
            _check(stop, g)  # (or the stop, raised inside polars' scan)
            log.warning("segment not compacted: %s", str(e).splitlines()[0][:300], extra={"path": str(src)})
            groups = None
        if groups is None:
            log.warning("segment not compacted: its rows do not render back exactly", extra={"path": str(src)})
            tmp.unlink(missing_ok=True)
            return Compacted(g.seq, None)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info(
        "segment compacted to Parquet",
        extra={"path": str(out), "rows": g.rows, "csv_bytes": g.size, "parquet_bytes": out.stat().st_size},
    )
    return Compacted(g.seq, tuple(groups))


class Compactor:
    """The background compaction: one segment at a time in its own thread."""

    def __init__(self, merger_dir: Path) -> None:
        self.merger_dir = merger_dir
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="merger-compact")
        self._stop = threading.Event()
        self._running: Future[Compacted] | None = None
        #: Segments not to try again in this run (their rows do not render back, or it failed).
        self.skipped: set[int] = set()

    def schedule(self, state: MergerState) -> None:
        """Start compacting the oldest closed segment without a copy, unless one is being compacted."""
        if self._running is not None:
            return
        for g in state.segments:
            if g.parquet is None and g.rows and g.seq not in self.skipped:
                self._running = self._pool.submit(compact_segment, self.merger_dir, g, self._stop)
                return

    def take(self) -> Compacted | None:
        """The compaction that finished since (None while one runs, or none did)."""
        running = self._running
        if running is None or not running.done():
            return None
        self._running = None
        try:
            done = running.result()
        except Exception as e:  # (a full disk...): tried again at the next start
            log.error("segment compaction failed", extra={"error": repr(e), "path": str(self.merger_dir)})
            return None
        if done.group_bytes is None:
            self.skipped.add(done.seq)
        return done

    def close(self) -> None:
        """Stop: the running compaction gives up within a chunk (done again at the next start)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class Compaction:
    """The merge engine's side of compaction (mixed into MergeEngine, a CommitWriter)."""

    settings: MergerSettings
    state: MergerState
    _compactor: Compactor | None
    _commit: Callable[..., None]
    publish_segments: Callable[[], None]

    def start_compaction(self) -> None:
        s = self.settings
        self._compactor = Compactor(s.merger_dir) if s.segment_bytes and s.compact_segments else None

    def stop_compaction(self) -> None:
        if self._compactor is not None:
            self._compactor.close()

    def adopt_compacted(self) -> None:
        """Commit a finished Parquet copy (then remove the CSV when it is not kept), and start the
        next compaction. Cheap when none finished. Raises CommitWriteError as _commit does (the copy
        is then not listed: removed on start, or compacted again)."""
        compactor = self._compactor
        if compactor is None:
            return
        done = compactor.take()
        if done is not None and done.group_bytes is not None:
            self._adopt(done.seq, done.group_bytes)
        compactor.schedule(self.state)

    def _adopt(self, seq: int, group_bytes: tuple[int, ...]) -> None:
        s = self.settings
        copy = s.merger_dir / parquet_file(seq)
        g = next((g for g in self.state.segments if g.seq == seq), None)
        if g is None or g.parquet is not None:  # retired meanwhile
            copy.unlink(missing_ok=True)
            return
        keep = s.keep_segment_csv
        done = g.model_copy(update={"parquet": parquet_file(seq), "csv_kept": keep, "group_bytes": list(group_bytes)})
        segments = tuple(done if x.seq == seq else x for x in self.state.segments)
        self._commit([], replace(self.state, segments=segments, commit_seq=self.state.commit_seq + 1), [])
        self.publish_segments()
        if not keep:
            g.path(s.merger_dir).unlink(missing_ok=True)
            fsync_dir(g.path(s.merger_dir).parent)
            log.info("removed a compacted segment's CSV", extra={"path": g.file, "parquet": done.parquet})
