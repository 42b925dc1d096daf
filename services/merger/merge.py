"""The merge engine: takes ready batch files in order and appends them to merged.csv, crash-safely.

One commit covers a group of consecutive batches (one file during steady streaming, many while
catching up): read and check each file, append the data lines of the valid ones with one write at the
committed length, fsync merged.csv, then atomically replace state.json to point past them, and only
then delete (or, for invalid ones, move) the batch files. A crash at any point leaves either the old
state (the uncommitted tail is cut off on restart and the files are still there) or the new one (the
files left behind are recognised as stale by their id)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from contract.csv import batch_file_name, parse_batch_file_name
from contract.files import atomic_write_bytes, read_json
from services.merger.batchfile import ParsedBatch, first_line, parse_batch
from services.merger.errors import InvalidBatchError, MergeAttemptError
from services.merger.plan import MergePlan, plan_merge
from services.merger.settings import MergerSettings
from services.merger.state import MergerState, QuarantineEntry, load_state, recover, save_state

log = logging.getLogger(__name__)

#: (batch id, path, raw bytes or None when the file vanished, parsed batch / None if empty / the error)
_Loaded = tuple[int, Path, bytes | None, ParsedBatch | Exception | None]


@dataclass
class CommitResult:
    """What one commit did (for metrics and freshness)."""

    batch_ids: list[int] = field(default_factory=list)
    merged: int = 0
    rows: int = 0
    empty: int = 0
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    appended_bytes: int = 0
    committed_at: float = 0.0
    duration_s: float = 0.0
    #: Per merged batch: eventTime of its rows, epoch microseconds.
    event_times_us: list[pl.Series] = field(default_factory=list)


@dataclass(frozen=True)
class PassResult:
    plan: MergePlan
    stale_removed: int
    files_present: int


class MergeEngine:
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
        self.state: MergerState = recover(settings.state_file, settings.merged_csv)
        self._fd = os.open(settings.merged_csv, os.O_WRONLY)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="merger-read")
        #: Failed attempts per file name (unexpected errors only), reset when the file is quarantined.
        self._attempts: dict[str, int] = {}
        log.info(
            "merger state loaded",
            extra={
                "path": str(settings.merged_csv),
                "last_batch_id": self.state.last_batch_id,
                "committed_size": self.state.committed_size,
            },
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- one pass ---------------------------------------------------------------------------------

    def scan(self) -> dict[int, str]:
        """Committed batch files in the input folder, by id (temp files and other names ignored)."""
        found: dict[int, str] = {}
        try:
            with os.scandir(self.settings.rows_dir) as it:
                for entry in it:
                    batch_id = parse_batch_file_name(entry.name)
                    if batch_id is not None:
                        found[batch_id] = entry.name
        except FileNotFoundError:
            pass
        return found

    def progress_batch_id(self) -> int | None:
        """The newest batch id the Spark job reports (its progress.json), if readable."""
        try:
            doc = read_json(self.settings.spark_progress)
        except (OSError, ValueError):
            return None
        value = doc.get("batchId") if isinstance(doc, dict) else None
        return value if isinstance(value, int) and value >= 0 else None

    def plan(self) -> tuple[MergePlan, dict[int, str]]:
        files = self.scan()
        plan = plan_merge(
            self.state.last_batch_id,
            files,
            first_batch_id=self.settings.first_batch_id,
            progress_batch_id=self.progress_batch_id(),
            limit=self.settings.max_group_batches,
        )
        return plan, files

    def run_pass(self, stop: threading.Event | None = None) -> PassResult:
        """Merge everything that is ready, group by group, until nothing is (or `stop` is set).
        Raises OSError (e.g. ENOSPC) with merged.csv cut back to its committed length."""
        stale_removed = 0
        while True:
            plan, files = self.plan()
            stale_removed += self._remove_stale(plan.stale)
            if not plan.ready or (stop is not None and stop.is_set()):
                return PassResult(plan=plan, stale_removed=stale_removed, files_present=len(files))
            self.commit_group(plan.ready)

    def _remove_stale(self, ids: tuple[int, ...]) -> int:
        if not self.settings.delete_merged_batches:
            return 0
        for batch_id in ids:
            path = self.settings.rows_dir / batch_file_name(batch_id)
            path.unlink(missing_ok=True)
            log.info("removed the file of an already merged batch", extra={"path": str(path), "batch_id": batch_id})
        return len(ids)

    # -- one commit -------------------------------------------------------------------------------

    def commit_group(self, ready: tuple[int, ...]) -> CommitResult:
        """Process `ready` (consecutive ids from the next expected one) in one commit, stopping early
        once the group holds max_group_bytes."""
        t0 = time.perf_counter()
        result = CommitResult()
        chunks: list[bytes] = []
        to_delete: list[Path] = []
        retry: MergeAttemptError | None = None
        # Files are read and checked ahead in a small pool (polars and file reads release the GIL),
        # and consumed here strictly in batch order.
        for batch_id, path, raw, parsed in self._read_ahead(ready):
            if raw is None:
                break  # replaced or removed under us: plan again
            if isinstance(parsed, Exception) and not isinstance(parsed, InvalidBatchError):
                try:
                    parsed = InvalidBatchError(self._failed_attempt(path, parsed))
                except MergeAttemptError as e:
                    retry = e  # commit what precedes it; the file is tried again on the next pass
                    break
            if isinstance(parsed, InvalidBatchError):
                result.quarantined.append(self._quarantine_copy(path, raw, batch_id, parsed.reason))
            else:
                self._count(result, parsed, chunks)
            result.batch_ids.append(batch_id)
            to_delete.append(path)
            if result.appended_bytes >= self.settings.max_group_bytes:
                break
        if not result.batch_ids:
            if retry is not None:
                raise retry
            return result

        new_size = self.state.committed_size + result.appended_bytes
        now = self.clock()
        state = replace(
            self.state,
            last_batch_id=result.batch_ids[-1],
            committed_size=new_size,
            batches_merged=self.state.batches_merged + result.merged,
            rows_merged=self.state.rows_merged + result.rows,
            empty_batches=self.state.empty_batches + result.empty,
            last_merge_at=now if result.merged else self.state.last_merge_at,
        ).with_quarantined(result.quarantined)
        self._commit(chunks, state)
        result.committed_at = now
        result.duration_s = time.perf_counter() - t0

        for path in to_delete:
            is_quarantined = any(q.file == path.name for q in result.quarantined)
            if is_quarantined or self.settings.delete_merged_batches:
                path.unlink(missing_ok=True)
        log.info(
            "committed batches",
            extra={
                "first_batch_id": result.batch_ids[0],
                "last_batch_id": result.batch_ids[-1],
                "merged": result.merged,
                "rows": result.rows,
                "empty": result.empty,
                "quarantined": len(result.quarantined),
                "committed_size": new_size,
                "ms": round(result.duration_s * 1000, 2),
            },
        )
        if self.on_commit is not None:
            self.on_commit(result)
        if retry is not None:
            raise retry
        return result

    def _failed_attempt(self, path: Path, error: Exception) -> str:
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

    def _read_ahead(self, ready: tuple[int, ...]) -> Iterator[_Loaded]:
        """Load results in `ready` order. Files are submitted while the bytes in flight stay under
        read_ahead_bytes (one at least), so memory is bounded by bytes, not by a number of files."""
        pending: deque[tuple[int, Future[_Loaded]]] = deque()
        in_flight = 0
        items = iter(ready)
        nxt = next(items, None)
        try:
            while True:
                while nxt is not None and (not pending or in_flight < self.settings.read_ahead_bytes):
                    path = self.settings.rows_dir / batch_file_name(nxt)
                    size = _size(path)
                    pending.append((size, self._pool.submit(self._load, (nxt, path))))
                    in_flight += size
                    nxt = next(items, None)
                if not pending:
                    return
                size, future = pending.popleft()
                in_flight -= size
                yield future.result()
        finally:
            for _, f in pending:
                f.cancel()

    @staticmethod
    def _load(item: tuple[int, Path]) -> _Loaded:
        """Read and check one file. An OSError reading it is raised (the pass is retried, as for disk
        full); any exception checking it is returned: the caller decides."""
        batch_id, path = item
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return batch_id, path, None, None
        try:
            return batch_id, path, raw, parse_batch(raw)
        except Exception as e:  # InvalidBatchError, or anything unexpected (retried, then quarantined)
            return batch_id, path, raw, e
        except BaseException as e:  # a polars panic is a BaseException (pyo3's PanicException)
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            return batch_id, path, raw, RuntimeError(f"{type(e).__name__}: {e}")

    @staticmethod
    def _count(result: CommitResult, parsed: ParsedBatch | None, chunks: list[bytes]) -> None:
        if parsed is None:
            result.empty += 1
            return
        chunks.append(parsed.data)
        result.merged += 1
        result.rows += parsed.rows
        result.appended_bytes += len(parsed.data)
        result.event_times_us.append(parsed.event_time_us)

    def _commit(self, chunks: list[bytes], state: MergerState) -> None:
        """Write `chunks` at the committed length, make them durable, then make `state` (which points
        past them) durable. On an I/O error (disk full...) merged.csv is cut back to the committed
        length and the error raised: the same batches are retried later."""
        try:
            if chunks:
                _pwrite_all(self._fd, chunks, self.state.committed_size)
                os.fdatasync(self._fd)
            save_state(self.settings.state_file, state)
        except OSError:
            self._after_failed_commit(state)
            raise
        self.state = state

    def _after_failed_commit(self, attempted: MergerState) -> None:
        try:
            on_disk = load_state(self.settings.state_file)
        except Exception:
            on_disk = None
        if on_disk == attempted:
            # The state was replaced; only a later step (the folder fsync) failed: it is committed.
            self.state = attempted
            return
        try:
            os.ftruncate(self._fd, self.state.committed_size)
        except OSError:
            log.exception("could not cut merged.csv back; it is done on the next start")

    def _quarantine_copy(self, path: Path, raw: bytes, batch_id: int, reason: str) -> QuarantineEntry:
        """Put a durable copy of an invalid batch file and its reason in the quarantine folder. The
        original is removed only after the state records the batch, so a crash in between repeats this."""
        qdir = self.settings.quarantine_dir
        atomic_write_bytes(qdir / path.name, raw)
        atomic_write_bytes(qdir / f"{path.name}.reason.txt", (reason + "\n").encode())
        log.warning(
            "quarantined an invalid batch file", extra={"path": str(path), "batch_id": batch_id, "reason": reason}
        )
        return QuarantineEntry(file=path.name, reason=reason, at=self.clock())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


#: Buffers per pwritev call (Linux IOV_MAX is 1024).
_IOV_BATCH = 512


def _pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` one after the other from `offset`, without joining them into one copy."""
    for start in range(0, len(chunks), _IOV_BATCH):
        group = chunks[start : start + _IOV_BATCH]
        expected = sum(len(c) for c in group)
        written = os.pwritev(fd, group, offset)
        if written < expected:  # a short write: finish it piece by piece
            rest = memoryview(b"".join(group))[written:]
            pos = offset + written
            while rest:
                n = os.pwrite(fd, rest, pos)
                rest, pos = rest[n:], pos + n
        offset += expected
