"""A batch too big to hold in memory, committed in row-bounded chunks (the merger's memory is bounded
by bytes, not by what a batch holds: a 1 MB Kafka record of empty readings makes ~330,000 rows).

A batch whose rows and rejects files hold more than `file_budget_bytes` is committed alone, with the
same protocol as any group (services.merger.merge): its rows file is read in chunks of about the
budget that each end at a row end (quote-aware: device_tracker.row_end; CR/LF inside quoted fields
is kept byte for byte), each chunk checked and filtered by the merged offsets (all chunks against the
offsets before the batch) and written at the next position past the committed length; then its reject
file the same way; both files fdatasynced; then the journal line (the commit point) and state.json.
Nothing is committed before the journal line: a crash or an error (disk full) in between leaves the
bytes past the committed lengths, which are cut off (at once, or on start). A chunk that breaks the
contract quarantines the whole file (a streamed copy) as for a small batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from contract.csv import BatchName
from contract.files import fsync_dir
from services.merger.batchfile import ParsedBatch, parse_batch
from services.merger.device_tracker import read_whole_lines
from services.merger.errors import CommitWriteError, InvalidBatchError
from services.merger.manifests import read_manifest
from services.merger.merged_offsets import OffsetCursor, merge_bounds
from services.merger.rejects import select_rejects
from services.merger.results import CommitResult
from services.merger.writes import pwrite_all, writing

if TYPE_CHECKING:
    from services.merger.merge import MergeEngine

log = logging.getLogger(__name__)

#: The header line is looked for in this many bytes.
_HEADER_MAX = 64 * 1024


def header_line(path: Path) -> bytes:
    """The file's first line, with its "\n" (b"" for an empty file)."""
    with open(path, "rb") as f:
        return f.readline(_HEADER_MAX)


def row_chunks(path: Path, budget: int) -> Iterator[tuple[bytes, bytes]]:
    """(header line, data rows) for each chunk of about `budget` bytes ending at a row end."""
    header = header_line(path)
    size = os.stat(path).st_size
    if len(header) >= size:
        return
    for _, chunk in read_whole_lines(path, len(header), size, budget):
        yield header, chunk


@dataclass
class Streamed:
    written: int = 0
    rows: int = 0
    bounds: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: eventTimes of the last chunk only (freshness is a sample; all of them would not be bounded).
    event_time_us: pl.Series | None = None
    #: The lowest and highest eventTime of the rows written (epoch microseconds).
    time_bounds: tuple[int, int] | None = None


def stream_rows(
    path: Path,
    fd: int,
    offset: int,
    budget: int,
    select: Callable[[ParsedBatch], tuple[bytes, int, pl.Series]],
    *,
    keyed: bool,
) -> Streamed:
    """Check, filter (`select`) and write the rows of `path` at `offset` of `fd`, chunk by chunk.
    `keyed`: the batch has a manifest, so its rows must carry their Kafka columns (a legacy batch,
    without a manifest, has none: its rows are appended as they are, like a small one's)."""
    out = Streamed()
    for header, chunk in row_chunks(path, budget):
        parsed = parse_batch(header + chunk)
        if parsed is None:
            continue
        if keyed and not parsed.keyed:
            raise InvalidBatchError("a batch with a manifest has no Kafka columns")
        data, rows, times = select(parsed)
        _pwrite(fd, data, offset + out.written, "rows")
        out.written += len(data)
        out.rows += rows
        out.event_time_us = times
        if rows and times.null_count() < times.len():
            low, high = int(times.min()), int(times.max())  # type: ignore[arg-type]
            b = out.time_bounds
            out.time_bounds = (low, high) if b is None else (min(b[0], low), max(b[1], high))
        merge_bounds(out.bounds, parsed.partition_bounds)
    return out


def stream_rejects(
    path: Path, fd: int, offset: int, budget: int, unmerged: Callable[[int, int], bool]
) -> tuple[int, int, int]:
    """Write the reject lines of `path` whose record is not merged at `offset` of `fd`: (bytes, kept,
    skipped). A missing file is (0, 0, 0)."""
    written = kept = skipped = 0
    try:
        for header, chunk in row_chunks(path, budget):
            selected = select_rejects(header + chunk, unmerged)
            _pwrite(fd, selected.data, offset + written, "rejects")
            written += len(selected.data)
            kept += selected.kept
            skipped += selected.skipped
    except FileNotFoundError:
        pass
    return written, kept, skipped


def count_unmerged_rejects(path: Path, unmerged: Callable[[int, int], bool], budget: int) -> int:
    """How many reject lines of `path` are of records not merged (read chunk by chunk)."""
    return sum(select_rejects(h + c, unmerged).kept for h, c in row_chunks(path, budget))


def copy_durable(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temp name, fsynced, without holding it in memory."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")  # (contract.files.TEMP_PATTERN: pruned if left)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial copy must not hold the space a full disk lacks
        raise
    fsync_dir(dst.parent)


def _pwrite(fd: int, data: bytes, offset: int, step: str) -> None:
    """A checked write (a short write finished or raised, never silent); an OSError is raised as
    CommitWriteError naming `step` and the file, as the merger's ordinary commit does."""
    try:
        pwrite_all(fd, [data], offset)
    except OSError as e:
        try:
            target: object = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            target = f"file descriptor {fd}"
        raise CommitWriteError.of(step, target, e) from e


def commit_streamed(
    engine: MergeEngine, name: BatchName, path: Path
) -> tuple[CommitResult, list[Path], CommitWriteError | None]:
    """Commit one big batch (see the module docstring): the result, the files to delete and the
    error to raise after them (state.json not written: the commit stands, its files are kept).
    Like MergeEngine._commit, a torn journal tail is settled before the first byte is written, a
    manifest without a topic id is held (nothing committed), and a quarantined batch's records
    count as merged."""

    t0 = time.perf_counter()
    now = engine.clock()
    settings, state = engine.settings, engine.state
    result = CommitResult(lineage=name.lineage)
    cursor = OffsetCursor.of(state)
    rejects_path = settings.rejects_dir / path.name
    engine.settle_journal()  # (before any write: settling cuts merged.csv back to the committed length)
    manifest = None
    try:
        manifest = read_manifest(path)
        if manifest is not None and manifest.topic_id is None:
            return result, [], None  # held: planned again (never taken as the same topic)
        result.events += cursor.begin(name.lineage, manifest, now)
        rows = stream_rows(
            path,
            engine.merged_fd,
            state.committed_size,
            settings.file_budget_bytes,
            lambda p: engine.select(cursor, p, result),
            keyed=manifest is not None,
        )
    except OSError:
        engine.cut_back()
        raise
    except Exception as e:  # a broken contract, or an unexpected error (retried, then quarantined)
        engine.cut_back()
        reason = e.reason if isinstance(e, InvalidBatchError) else engine.failed_attempt(path, e)
        cursor = OffsetCursor.of(state)
        result = CommitResult(lineage=name.lineage)
        if manifest is not None and manifest.topic_id is not None:  # its records count as merged
            result.events += cursor.begin(name.lineage, manifest, now)
        else:
            manifest = None
        result.quarantined.append(engine.quarantine_copy(path, None, name.batch_id, reason))
        rows = Streamed()
    else:
        if rows.rows:
            result.merged, result.rows, result.appended_bytes = 1, rows.rows, rows.written
            result.offsets, result.event_time_bounds = dict(rows.bounds), rows.time_bounds
            if rows.event_time_us is not None:
                result.event_times_us.append(rows.event_time_us)
        else:
            result.empty = 1
    try:
        written, kept, skipped = stream_rejects(
            rejects_path,
            engine.rejects_fd,
            state.rejects_committed_size,
            settings.file_budget_bytes,
            cursor.current.unmerged,
        )
        result.rejects, result.rejects_bytes, result.rejects_skipped = kept, written, skipped
    except InvalidBatchError as e:
        engine.cut_back(rows_too=False)
        result.quarantined.append(engine.quarantine_rejects(rejects_path, None, e.reason))
    except OSError:
        engine.cut_back()
        raise
    result.events += cursor.advance(manifest, rows.bounds, now)
    result.batch_ids.append(name.batch_id)
    try:
        if result.appended_bytes:
            with writing("rows", settings.merged_csv):
                os.fdatasync(engine.merged_fd)
        if result.rejects_bytes:
            with writing("rejects", settings.merged_rejects):
                os.fdatasync(engine.rejects_fd)
    except OSError:
        engine.cut_back()
        raise
    to_delete, retry = [path], None
    try:
        engine.commit_state(engine.state_after(result, cursor, now))
    except CommitWriteError as e:
        if e.step != "state":
            raise
        to_delete, retry = [], e  # committed, but its files wait for state.json (next pass)
    result.committed_at = now
    result.duration_s = time.perf_counter() - t0
    log.info(
        "committed a big batch in chunks",
        extra={"path": str(path), "chunk_bytes": settings.file_budget_bytes, "rows": result.rows},
    )
    return result, to_delete, retry
