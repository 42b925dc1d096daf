"""The merge engine: takes the batch files the planner finds ready and appends them to merged.csv,
crash-safely.

Which files (services.merger.plan): keyed batches by their offsets alone. A batch with a record not
merged for its topic identity is ready, whatever its lineage name, batch id or mtime; one whose every
record is merged is deleted (the one rule for deleting a batch file); one without a topic id is held
with a topic_id_unknown event. Ready batches are taken in the order they were written (the sink's
lineage_seq). Nothing waits for a batch that may never come: merged offsets keep the gaps a later
batch leaves (services.merger.merged_offsets), and a batch holding them is merged whenever it comes. Legacy
batches (no manifest) keep their batch-id order.

One commit covers a group of ready batches (one file during steady streaming, many while catching
up): read and check each file, keep the rows whose Kafka record is not merged yet, append them with
one write at the committed length, fsync merged.csv, append the new state to the journal and fsync it
(the commit point), replace state.json, and only then delete (or, for invalid ones, move) the batch
files. A crash at any point leaves either the old state (the uncommitted tail is cut off on restart
and the files are still there) or the new one (the files left behind hold only merged records, so the
planner deletes them). A batch bigger than file_budget_bytes is committed alone, in row-bounded
chunks, under the same protocol (services.merger.streamed).

Every write of a commit is checked, short writes included (a full disk, a quota, an I/O error):
- before the journal line is complete and fsynced (rows, rejects, the journal line itself), the
  journal and then merged.csv and rejects.csv are cut back to their committed lengths (or, when a
  cut fails, on start: a torn journal line is never read) and CommitWriteError is raised: the old
  state stands and no batch file is touched;
- when state.json cannot be written after the journal line, the commit stands (the journal has it)
  but no batch file is deleted: each pass writes state.json first and raises until it can.
The watcher retries with a backoff and reports the condition (/merger/status `write_blocked`), so
the merge resumes by itself once space is freed; a batch is never quarantined for a failed write.
Temp files left by a crash (in the merger's folder and quarantine/) are pruned at start and after
each pass.

A batch's reject file (spark/rejects, same name) is accounted for the same way: its lines (those of
records not merged yet) are appended to rejects.csv in the batch's commit, whose journal line records
both committed lengths; the file is deleted after the commit, with its batch when that is deleted,
or alone (no rows file, no manifest) once every line's record is merged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import polars as pl

from contract.csv import LEGACY_LINEAGE, MANIFEST_SUFFIX, BatchName, manifest_file_name
from contract.merger_status import QuarantinedBatch
from services.merger.batchfile import ParsedBatch, first_line, select_rows
from services.merger.commit import CommitWriter
from services.merger.compaction import Compaction
from services.merger.errors import CommitWriteError, InvalidBatchError, MergeAttemptError
from services.merger.merged_offsets import OffsetCursor, merge_bounds
from services.merger.planner import BatchPlanner, Planned, batch_file
from services.merger.quarantine import prune_quarantine, prune_temp_files, quarantine_copy, quarantine_rejects
from services.merger.readahead import ReadAhead, size_of
from services.merger.recovery import recover
from services.merger.rejects import select_rejects
from services.merger.results import CommitResult, PassResult, time_bounds
from services.merger.segments import grown
from services.merger.settings import MergerSettings
from services.merger.state import MergerState, save_state
from services.merger.streamed import commit_streamed

log = logging.getLogger(__name__)


class MergeEngine(CommitWriter, ReadAhead, Compaction):
    """Owns merged.csv and state.json. Not thread-safe: one thread runs passes; other threads may
    read `state` (an immutable snapshot, swapped after each commit)."""

    def __init__(
        self,
        settings: MergerSettings,
        on_commit: Callable[[CommitResult], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.on_commit = on_commit
        self.clock = clock
        settings.rows_dir.mkdir(parents=True, exist_ok=True)
        settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
        self._prune_temp_files()
        self.state: MergerState = recover(
            settings.state_file,
            settings.merged_csv,
            settings.journal_file,
            settings.quarantine_dir,
            rejects_path=settings.merged_rejects,
        )
        self._open_outputs()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="merger-read")
        self.planner = BatchPlanner(settings, clock)
        #: Failed attempts per file name (unexpected errors only), reset when the file is quarantined,
        #: dropped when the file is gone (plan).
        self._attempts: dict[str, int] = {}
        log.info(
            "merger state loaded",
            extra={
                "path": str(settings.merged_csv),
                "last_batch_id": self.state.last_batch_id,
                "lineage": self.state.lineage,
                "next_offsets": self.state.next_offsets,
                "committed_size": self.state.committed_size,
            },
        )
        self.publish_segments()
        self.start_compaction()

    def close(self) -> None:
        self.stop_compaction()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._close_outputs()

    # -- one pass ---------------------------------------------------------------------------------

    def plan(self) -> Planned:
        """What to do now (services.merger.planner); drops the attempt counters of files gone and
        records the events of newly held batches."""
        planned = self.planner.plan(self.state)
        self._attempts = {k: v for k, v in self._attempts.items() if k in planned.present}  # (no growth)
        if planned.events:
            self.state = self.state.with_events(list(planned.events))
            try:
                save_state(self.settings.state_file, self.state)
            except OSError as e:
                log.error("state.json not replaced (events only)", extra={"error": str(e)})
        return planned

    def run_pass(self, stop: threading.Event | None = None) -> PassResult:
        """Merge everything that is ready, group by group, until nothing is (or `stop` is set).
        Raises CommitWriteError (e.g. ENOSPC) with nothing deleted (see _commit), or another OSError."""
        stale_removed = 0
        self.save_pending_state()  # before any batch file is deleted
        self.retire()
        while True:
            self.adopt_compacted()  # (a commit of its own when a Parquet copy is ready; never waits)
            planned = self.plan()
            stale_removed += self._remove_stale(planned.stale)
            stale_removed += self._remove_stale(planned.stale_rejects, self.settings.rejects_dir)
            plan = planned.plan
            if not planned.ready or (stop is not None and stop.is_set()):
                self._prune_temp_files()
                return PassResult(plan, stale_removed, planned.files_present, self.state.lineage)
            self.commit_group(planned.ready)

    def _remove_stale(self, names: tuple[str, ...], folder: Path | None = None) -> int:
        """Files of batches already processed (a re-run, or an abandoned lineage): their rows (or
        rejects) are merged already or come again under the newer lineage (and are then kept by their
        offsets). `folder` is the rows folder unless told."""
        if not self.settings.delete_merged_batches:
            return 0
        folder = folder or self.settings.rows_dir
        for name in names:
            path = folder / name
            path.unlink(missing_ok=True)
            if not name.endswith(MANIFEST_SUFFIX):
                (folder / manifest_file_name(name)).unlink(missing_ok=True)
            log.info("removed the file of an already processed batch", extra={"path": str(path)})
        return len(names)

    # -- one commit -------------------------------------------------------------------------------

    def commit_group(
        self, ready: tuple[BatchName, ...] | tuple[int, ...], lineage: str = LEGACY_LINEAGE
    ) -> CommitResult:
        """Process `ready` (batches in merge order; bare ids are of `lineage`) in one commit, stopping
        early once the group holds max_group_bytes. A batch whose rows and rejects files pass
        file_budget_bytes is committed alone, streamed in row-bounded chunks (services.merger.streamed)."""
        names = [n if isinstance(n, BatchName) else BatchName(lineage, n) for n in ready]
        self.roll_over()
        for i, name in enumerate(names):
            if self._file_bytes(name) > self.settings.file_budget_bytes:
                if i == 0:
                    return self._finish(*commit_streamed(self, name, self.rows_dir / batch_file(name)))
                names = names[:i]
                break
        t0 = time.perf_counter()
        result = CommitResult(lineage=names[0].lineage if names else lineage)
        chunks: list[bytes] = []
        reject_chunks: list[bytes] = []
        to_delete: list[Path] = []
        retry: MergeAttemptError | None = None
        cursor = OffsetCursor.of(self.state)
        now = self.clock()
        # Files are read and checked ahead in a small pool (polars and file reads release the GIL),
        # and consumed here strictly in order.
        for name, path, raw, parsed, manifest in self._read_ahead(names):
            if raw is None or (manifest is not None and manifest.topic_id is None):
                break  # replaced or removed under us (or no topic id now): plan again
            before = (cursor.copy(), len(result.events), result.rows_skipped)
            result.events += cursor.begin(name.lineage, manifest, now)
            selected: tuple[bytes, int, pl.Series] | None = None
            if isinstance(parsed, ParsedBatch):
                try:
                    selected = self.select(cursor, parsed, result)
                except Exception as e:
                    parsed = e
            if isinstance(parsed, Exception) and not isinstance(parsed, InvalidBatchError):
                try:
                    parsed = InvalidBatchError(self.failed_attempt(path, parsed))
                except MergeAttemptError as e:
                    # Commit what precedes it, as if this batch had not been seen; it is tried again.
                    cursor, result.rows_skipped = before[0], before[2]
                    del result.events[before[1] :]
                    retry = e
                    break
            if isinstance(parsed, InvalidBatchError):
                result.quarantined.append(self.quarantine_copy(path, raw, name.batch_id, parsed.reason))
            else:
                self._count(result, selected, chunks)
                if selected is not None and selected[1] and isinstance(parsed, ParsedBatch):
                    merge_bounds(result.offsets, parsed.partition_bounds)
            self._add_rejects(path.name, cursor, result, reject_chunks)
            result.events += cursor.advance(
                manifest, parsed.partition_bounds if isinstance(parsed, ParsedBatch) else {}, now
            )
            result.batch_ids.append(name.batch_id)
            result.lineage = name.lineage
            to_delete.append(path)
            if result.appended_bytes >= self.settings.max_group_bytes:
                break
        if not result.batch_ids:
            if retry is not None:
                raise retry
            return result
        state = self.state_after(result, cursor, now)
        try:
            self._commit(chunks, state, reject_chunks)
        except CommitWriteError as e:
            if e.step != "state":
                raise
            retry, to_delete = e, []  # committed, but its files wait for state.json (next pass)
        result.committed_at = now
        result.duration_s = time.perf_counter() - t0
        return self._finish(result, to_delete, retry)

    @property
    def rows_dir(self) -> Path:
        return self.settings.rows_dir

    def _file_bytes(self, name: BatchName) -> int:
        return size_of(self.rows_dir / batch_file(name)) + size_of(self.settings.rejects_dir / batch_file(name))

    def state_after(self, result: CommitResult, cursor: OffsetCursor, now: float) -> MergerState:
        """The state once `result` (batches up to its last, at `cursor`) is committed."""
        committed_size = self.state.committed_size + result.appended_bytes
        active = grown(self.state.active, result.rows, committed_size, result.offsets, time_bounds(result))
        return (
            replace(
                cursor.into(self.state),
                last_batch_id=result.batch_ids[-1],
                lineage=result.lineage,
                committed_size=committed_size,
                active=active,
                batches_merged=self.state.batches_merged + result.merged,
                rows_merged=self.state.rows_merged + result.rows,
                rows_skipped=self.state.rows_skipped + result.rows_skipped,
                rejects_committed_size=self.state.rejects_committed_size + result.rejects_bytes,
                rejects_merged=self.state.rejects_merged + result.rejects,
                empty_batches=self.state.empty_batches + result.empty,
                last_merge_at=now if result.merged else self.state.last_merge_at,
                commit_seq=self.state.commit_seq + 1,
            )
            .with_quarantined(result.quarantined)
            .with_events(result.events)
        )

    def _finish(
        self, result: CommitResult, to_delete: list[Path], retry: MergeAttemptError | None = None
    ) -> CommitResult:
        """After the commit: delete (or, quarantined, remove) the files, log, tell on_commit."""
        for path in to_delete:
            if self.settings.delete_merged_batches:  # (before the rows file: its lines are committed)
                (self.settings.rejects_dir / path.name).unlink(missing_ok=True)
            is_quarantined = any(q.file == path.name for q in result.quarantined)
            if is_quarantined or self.settings.delete_merged_batches:
                path.unlink(missing_ok=True)
                (path.parent / manifest_file_name(path.name)).unlink(missing_ok=True)
        if result.quarantined:
            prune_quarantine(self.settings)
        if result.batch_ids:
            log.info(
                "committed batches",
                extra={
                    "first_batch_id": result.batch_ids[0],
                    "last_batch_id": result.batch_ids[-1],
                    "merged": result.merged,
                    "rows": result.rows,
                    "empty": result.empty,
                    "lineage": result.lineage,
                    "rows_skipped": result.rows_skipped,
                    "rejects": result.rejects,
                    "rejects_skipped": result.rejects_skipped,
                    "quarantined": len(result.quarantined),
                    "committed_size": self.state.committed_size,
                    "ms": round(result.duration_s * 1000, 2),
                },
            )
            if self.on_commit is not None:
                self.on_commit(result)
        if retry is not None:
            raise retry
        return result

    def failed_attempt(self, path: Path, error: Exception) -> str:
        """Count a failed attempt at a file (an unexpected error: csv.Error, a polars panic...). Raises
        MergeAttemptError while it may be retried; then returns the reason to quarantine it."""
        reason = f"{type(error).__name__}: {first_line(str(error))}"
        n = self._attempts.get(path.name, 0) + 1
        self._attempts[path.name] = n
        if n < self.settings.max_file_attempts:
            log.warning(
                "could not merge a batch file, retrying",
                extra={"path": str(path), "attempt": n, "error": reason},
                exc_info=error,
            )
            raise MergeAttemptError(f"{path.name}: {reason} (attempt {n} of {self.settings.max_file_attempts})")
        self._attempts.pop(path.name, None)
        return f"failed {n} times: {reason}"

    def _add_rejects(self, name: str, cursor: OffsetCursor, result: CommitResult, chunks: list[bytes]) -> None:
        """Take the batch's reject file, if any (the job commits it before the rows file): its lines
        of records not merged yet go into this commit. An invalid one is quarantined instead."""
        path = self.settings.rejects_dir / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            selected = select_rejects(raw, cursor.current.unmerged)
        except InvalidBatchError as e:
            result.quarantined.append(self.quarantine_rejects(path, raw, e.reason))
            return
        if selected.data:
            chunks.append(selected.data)
        result.rejects += selected.kept
        result.rejects_bytes += len(selected.data)
        result.rejects_skipped += selected.skipped

    @staticmethod
    def select(cursor: OffsetCursor, parsed: ParsedBatch, result: CommitResult) -> tuple[bytes, int, pl.Series]:
        """The bytes to append for a valid batch, its row count and eventTimes (rows whose Kafka
        record is merged already left out)."""
        if not parsed.keyed:
            return parsed.data, parsed.rows, parsed.event_time_us
        keep = cursor.keep(parsed)
        data = select_rows(parsed, keep)
        if keep is None:
            return data, parsed.rows, parsed.event_time_us
        kept = int(keep.sum())
        result.rows_skipped += parsed.rows - kept
        return data, kept, parsed.event_time_us.filter(keep)

    @staticmethod
    def _count(result: CommitResult, selected: tuple[bytes, int, pl.Series] | None, chunks: list[bytes]) -> None:
        if selected is None or not selected[1]:
            result.empty += 1
            return
        data, rows, event_time_us = selected
        chunks.append(data)
        result.merged += 1
        result.rows += rows
        result.appended_bytes += len(data)
        result.event_times_us.append(event_time_us)

    # -- what services.merger.streamed uses ------------------------------------------------------

    def quarantine_copy(self, path: Path, raw: bytes | None, batch_id: int, reason: str) -> QuarantinedBatch:
        return quarantine_copy(self.settings, path, raw, batch_id, reason, self.clock())

    def quarantine_rejects(self, path: Path, raw: bytes | None, reason: str) -> QuarantinedBatch:
        return quarantine_rejects(self.settings, path, raw, reason, self.clock())

    def _prune_temp_files(self) -> None:
        s = self.settings
        prune_temp_files(s, (s.state_file.name, s.journal_file.name, s.merged_csv.name, s.merged_rejects.name))
