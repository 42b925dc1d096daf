"""The merge engine: takes ready batch files in order and appends them to merged.csv, crash-safely.

One commit covers a group of consecutive batches of one checkpoint lineage (one file during steady
streaming, many while catching up): read and check each file, keep the rows whose Kafka record is
not merged yet (services.merger.offsets), append them with one write at the committed length, fsync
merged.csv, append the new state to the journal and fsync it (the commit point), replace state.json,
and only then delete (or, for invalid ones, move) the batch files. A crash at any point leaves either
the old state (the uncommitted tail is cut off on restart and the files are still there) or the new
one (the files left behind are stale by their lineage and id, and their rows by their offsets).

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
both committed lengths; the file is deleted after the commit (and as stale when left behind)."""

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

import orjson
import polars as pl

from contract.batches import BatchManifest
from contract.csv import LEGACY_LINEAGE, MANIFEST_SUFFIX, batch_file_name, manifest_file_name, parse_batch_name
from contract.files import TEMP_PATTERN, atomic_write_bytes, fsync_dir
from contract.progress import read_progress_or_none
from services.merger.batchfile import ParsedBatch, first_line, parse_batch, select_rows
from services.merger.errors import CommitWriteError, InvalidBatchError, MergeAttemptError
from services.merger.offsets import OffsetCursor
from services.merger.plan import LineagePlan, MergePlan, choose_lineage, plan_merge
from services.merger.rejects import select_rejects
from services.merger.settings import MergerSettings
from services.merger.state import MergerEvent, MergerState, QuarantineEntry, recover, save_state
from services.merger.writes import pwrite_all, write_all, writing

log = logging.getLogger(__name__)

#: An invalid reject file is quarantined under this prefix and its batch file name.
_REJECTS_PREFIX = "rejects-"
#: (batch id, path, raw bytes or None when the file vanished, parsed batch / None if empty / the error,
#: the manifest (None for a legacy batch))
_Loaded = tuple[int, Path, bytes | None, ParsedBatch | Exception | None, BatchManifest | None]


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
    #: The lineage of batch_ids; rows dropped because their Kafka record was already merged.
    lineage: str = LEGACY_LINEAGE
    rows_skipped: int = 0
    events: list[MergerEvent] = field(default_factory=list)
    #: Reject lines appended to rejects.csv (and their bytes), and those left out (already merged).
    rejects: int = 0
    rejects_bytes: int = 0
    rejects_skipped: int = 0


@dataclass(frozen=True)
class PassResult:
    plan: MergePlan
    stale_removed: int
    files_present: int
    #: The lineage the plan is about.
    lineage: str = LEGACY_LINEAGE


@dataclass(frozen=True)
class _Planned:
    plan: MergePlan
    lineage: str
    stale: tuple[str, ...]  # file names
    files_present: int
    stale_rejects: tuple[str, ...] = ()  # reject file names


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
        self._prune_temp_files()
        self.state: MergerState = recover(
            settings.state_file,
            settings.merged_csv,
            settings.journal_file,
            settings.quarantine_dir,
            rejects_path=settings.merged_rejects,
        )
        self._fd = os.open(settings.merged_csv, os.O_WRONLY)
        self._rejects_fd = os.open(settings.merged_rejects, os.O_WRONLY)
        self._journal_fd = os.open(settings.journal_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        #: The journal's length up to its last complete line (anything past it is cut before a write).
        self._journal_end = os.fstat(self._journal_fd).st_size
        #: False while the committed state is in the journal only (state.json not written yet).
        self._state_saved = True
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="merger-read")
        self._manifests: list[str] = []
        #: Failed attempts per file name (unexpected errors only), reset when the file is quarantined.
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

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for name in ("_fd", "_rejects_fd", "_journal_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    # -- one pass ---------------------------------------------------------------------------------

    def scan(self) -> dict[str, dict[int, str]]:
        """Committed batch files in the input folder, by lineage and id (temp files, manifests and
        other names ignored). Remembers the manifests without a rows file (see _orphan_manifests)."""
        found: dict[str, dict[int, str]] = {}
        manifests: list[str] = []
        try:
            with os.scandir(self.settings.rows_dir) as it:
                for entry in it:
                    parsed = parse_batch_name(entry.name)
                    if parsed is not None:
                        found.setdefault(parsed.lineage, {})[parsed.batch_id] = entry.name
                    elif entry.name.endswith(MANIFEST_SUFFIX):
                        manifests.append(entry.name)
        except FileNotFoundError:
            pass
        self._manifests = manifests
        return found

    def _orphan_manifests(self, files: dict[str, dict[int, str]]) -> list[str]:
        """Manifests of processed batches whose rows file is gone: the job crashed between writing
        the manifest and renaming the rows file, and that batch was then merged under another name
        (a re-run removed since, or a newer lineage). Without this they would stay forever."""
        orphans = []
        for manifest in self._manifests:
            name = parse_batch_name(manifest.removesuffix(MANIFEST_SUFFIX) + ".csv")
            if name is None or name.batch_id in files.get(name.lineage, {}):
                continue
            lineage, last = self.state.lineage, self.state.last_batch_id
            if name.lineage < lineage or (name.lineage == lineage and last is not None and name.batch_id <= last):
                orphans.append(manifest)
        return orphans

    def progress_batch_id(self) -> int | None:
        """The newest batch id the Spark job reports (its progress.json), if readable."""
        doc = read_progress_or_none(self.settings.spark_progress)
        value = doc.batch_id if doc is not None else None
        return value if value is not None and value >= 0 else None

    def plan(self) -> _Planned:
        files = self.scan()
        ids = {lineage: list(by_id) for lineage, by_id in files.items()}
        lp = choose_lineage(
            self.state.lineage, self.state.last_batch_id, ids, first_batch_id=self.settings.first_batch_id
        )
        if lp.switched:
            log.info(
                "following a new checkpoint lineage",
                extra={"from_lineage": self.state.lineage, "lineage": lp.lineage, "first_batch_id": lp.first_batch_id},
            )
        # The job's progress.json is about the newest lineage only.
        newest_lineage = max([*ids, self.state.lineage])
        plan = plan_merge(
            lp.last_batch_id,
            ids.get(lp.lineage, []),
            first_batch_id=lp.first_batch_id,
            progress_batch_id=self.progress_batch_id() if lp.lineage == newest_lineage else None,
            limit=self.settings.max_group_batches,
        )
        stale = [name for lineage in lp.stale_lineages for name in files[lineage].values()]
        stale += [files[lp.lineage][i] for i in plan.stale]
        stale += self._orphan_manifests(files)
        return _Planned(
            plan, lp.lineage, tuple(stale), sum(len(f) for f in files.values()), tuple(self._stale_rejects(lp))
        )

    def _stale_rejects(self, lp: LineagePlan) -> list[str]:
        """Reject files of batches already processed (left by a crash right after the commit, or a
        re-run) or of abandoned lineages: their lines are in rejects.csv or come again."""
        lineage, last = self.state.lineage, self.state.last_batch_id
        stale = []
        try:
            with os.scandir(self.settings.rejects_dir) as it:
                for entry in it:
                    name = parse_batch_name(entry.name)
                    if name is None:
                        continue
                    done = name.lineage == lineage and last is not None and name.batch_id <= last
                    if done or name.lineage < lineage or name.lineage in lp.stale_lineages:
                        stale.append(entry.name)
        except FileNotFoundError:
            pass
        return sorted(stale)

    def run_pass(self, stop: threading.Event | None = None) -> PassResult:
        """Merge everything that is ready, group by group, until nothing is (or `stop` is set).
        Raises CommitWriteError (e.g. ENOSPC) with nothing deleted (see _commit), or another OSError."""
        stale_removed = 0
        self.save_pending_state()  # before any batch file is deleted
        while True:
            planned = self.plan()
            stale_removed += self._remove_stale(planned.stale)
            stale_removed += self._remove_stale(planned.stale_rejects, self.settings.rejects_dir)
            plan = planned.plan
            if not plan.ready or (stop is not None and stop.is_set()):
                self._prune_temp_files()
                return PassResult(plan, stale_removed, planned.files_present, planned.lineage)
            self.commit_group(plan.ready, planned.lineage)

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

    def commit_group(self, ready: tuple[int, ...], lineage: str = LEGACY_LINEAGE) -> CommitResult:
        """Process `ready` (consecutive ids of `lineage` from the next expected one) in one commit,
        stopping early once the group holds max_group_bytes."""
        t0 = time.perf_counter()
        result = CommitResult(lineage=lineage)
        chunks: list[bytes] = []
        reject_chunks: list[bytes] = []
        to_delete: list[Path] = []
        retry: MergeAttemptError | None = None
        cursor = OffsetCursor.of(self.state)
        now = self.clock()
        # Files are read and checked ahead in a small pool (polars and file reads release the GIL),
        # and consumed here strictly in batch order.
        for batch_id, path, raw, parsed, manifest in self._read_ahead(ready, lineage):
            if raw is None:
                break  # replaced or removed under us: plan again
            before = (cursor.copy(), len(result.events), result.rows_skipped)
            result.events += cursor.begin(lineage, manifest, now)
            selected: tuple[bytes, int, pl.Series] | None = None
            if isinstance(parsed, ParsedBatch):
                try:
                    selected = self._select(cursor, parsed, result)
                except Exception as e:
                    parsed = e
            if isinstance(parsed, Exception) and not isinstance(parsed, InvalidBatchError):
                try:
                    parsed = InvalidBatchError(self._failed_attempt(path, parsed))
                except MergeAttemptError as e:
                    # Commit what precedes it, as if this batch had not been seen; it is tried again.
                    cursor, result.rows_skipped = before[0], before[2]
                    del result.events[before[1] :]
                    retry = e
                    break
            if isinstance(parsed, InvalidBatchError):
                result.quarantined.append(self._quarantine_copy(path, raw, batch_id, parsed.reason))
            else:
                self._count(result, selected, chunks)
            self._add_rejects(path.name, cursor, result, reject_chunks)
            cursor.advance(manifest, parsed if isinstance(parsed, ParsedBatch) else None)
            result.batch_ids.append(batch_id)
            to_delete.append(path)
            if result.appended_bytes >= self.settings.max_group_bytes:
                break
        if not result.batch_ids:
            if retry is not None:
                raise retry
            return result

        new_size = self.state.committed_size + result.appended_bytes
        state = (
            replace(
                self.state,
                last_batch_id=result.batch_ids[-1],
                lineage=lineage,
                committed_size=new_size,
                batches_merged=self.state.batches_merged + result.merged,
                rows_merged=self.state.rows_merged + result.rows,
                rows_skipped=self.state.rows_skipped + result.rows_skipped,
                rejects_committed_size=self.state.rejects_committed_size + result.rejects_bytes,
                rejects_merged=self.state.rejects_merged + result.rejects,
                empty_batches=self.state.empty_batches + result.empty,
                last_merge_at=now if result.merged else self.state.last_merge_at,
                topic=cursor.topic,
                topic_id=cursor.topic_id,
                next_offsets=dict(sorted(cursor.next_offsets.items())),
                lineage_offsets=dict(sorted(cursor.lineage_offsets.items())),
                commit_seq=self.state.commit_seq + 1,
            )
            .with_quarantined(result.quarantined)
            .with_events(result.events)
        )
        try:
            self._commit(chunks, state, reject_chunks)
        except CommitWriteError as e:
            if e.step != "state":
                raise
            retry, to_delete = e, []  # committed, but its files wait for state.json (next pass)
        result.committed_at = now
        result.duration_s = time.perf_counter() - t0

        for path in to_delete:
            if self.settings.delete_merged_batches:  # (before the rows file: its lines are committed)
                (self.settings.rejects_dir / path.name).unlink(missing_ok=True)
            is_quarantined = any(q.file == path.name for q in result.quarantined)
            if is_quarantined or self.settings.delete_merged_batches:
                path.unlink(missing_ok=True)
                (path.parent / manifest_file_name(path.name)).unlink(missing_ok=True)
        if result.quarantined:
            self._prune_quarantine()
        log.info(
            "committed batches",
            extra={
                "first_batch_id": result.batch_ids[0],
                "last_batch_id": result.batch_ids[-1],
                "merged": result.merged,
                "rows": result.rows,
                "empty": result.empty,
                "lineage": lineage,
                "rows_skipped": result.rows_skipped,
                "rejects": result.rejects,
                "rejects_skipped": result.rejects_skipped,
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

    def _add_rejects(self, name: str, cursor: OffsetCursor, result: CommitResult, chunks: list[bytes]) -> None:
        """Take the batch's reject file, if any (the job commits it before the rows file): its lines
        of records not merged yet go into this commit. An invalid one is quarantined instead."""
        path = self.settings.rejects_dir / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            selected = select_rejects(raw, cursor.next_offsets)
        except InvalidBatchError as e:
            result.quarantined.append(self._quarantine_rejects(path, raw, e.reason))
            return
        if selected.data:
            chunks.append(selected.data)
        result.rejects += selected.kept
        result.rejects_bytes += len(selected.data)
        result.rejects_skipped += selected.skipped

    def _quarantine_rejects(self, path: Path, raw: bytes, reason: str) -> QuarantineEntry:
        name = f"{_REJECTS_PREFIX}{path.name}"
        with writing("quarantine", self.settings.quarantine_dir / name):
            atomic_write_bytes(self.settings.quarantine_dir / name, raw)
            atomic_write_bytes(self.settings.quarantine_dir / f"{name}.reason.txt", (reason + "\n").encode())
        log.warning("quarantined an invalid reject file", extra={"path": str(path), "reason": reason})
        return QuarantineEntry(file=name, reason=reason, at=self.clock())

    @staticmethod
    def _select(cursor: OffsetCursor, parsed: ParsedBatch, result: CommitResult) -> tuple[bytes, int, pl.Series]:
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

    def _read_ahead(self, ready: tuple[int, ...], lineage: str = LEGACY_LINEAGE) -> Iterator[_Loaded]:
        """Load results in `ready` order. Files are submitted while the bytes in flight stay under
        read_ahead_bytes (one at least), so memory is bounded by bytes, not by a number of files."""
        pending: deque[tuple[int, Future[_Loaded]]] = deque()
        in_flight = 0
        items = iter(ready)
        nxt = next(items, None)
        try:
            while True:
                while nxt is not None and (not pending or in_flight < self.settings.read_ahead_bytes):
                    path = self.settings.rows_dir / batch_file_name(nxt, lineage)
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
        manifest: BatchManifest | None = None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return batch_id, path, None, None, None
        try:
            manifest = _read_manifest(path)
            parsed = parse_batch(raw)
            if manifest is not None and parsed is not None and not parsed.keyed:
                raise InvalidBatchError("a batch with a manifest has no Kafka columns")
            return batch_id, path, raw, parsed, manifest
        except Exception as e:  # InvalidBatchError, or anything unexpected (retried, then quarantined)
            return batch_id, path, raw, e, manifest
        except BaseException as e:  # a polars panic is a BaseException (pyo3's PanicException)
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            return batch_id, path, raw, RuntimeError(f"{type(e).__name__}: {e}"), manifest

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

    def _commit(self, chunks: list[bytes], state: MergerState, reject_chunks: list[bytes] | None = None) -> None:
        """Write `chunks` (and `reject_chunks` to rejects.csv) at the committed lengths, make them
        durable, then append `state` (which points past them) to the journal and fsync it (the
        commit point), then write state.json. Every write is checked (short writes too). Raises
        CommitWriteError naming the step and the file:
        - up to the journal line: the journal and both files are cut back, the old state stands;
        - at state.json: the commit stands (self.state is `state`), state.json is written by the
          next pass (save_pending_state), and the caller deletes no batch file meanwhile."""
        files = self.settings
        line = orjson.dumps(state.journal_json()) + b"\n"
        try:
            with writing("journal", files.journal_file):
                self._settle_journal()
            if chunks:
                with writing("rows", files.merged_csv):
                    pwrite_all(self._fd, chunks, self.state.committed_size)
                    os.fdatasync(self._fd)
            if reject_chunks:
                with writing("rejects", files.merged_rejects):
                    pwrite_all(self._rejects_fd, reject_chunks, self.state.rejects_committed_size)
                    os.fdatasync(self._rejects_fd)
            with writing("journal", files.journal_file):
                write_all(self._journal_fd, line)
                os.fdatasync(self._journal_fd)
        except CommitWriteError as e:
            log.error(
                "commit not written, retried later",
                extra={"step": e.step, "path": e.filename, "error": e.strerror, "batch_id": state.last_batch_id},
            )
            if self._cut_journal(self._journal_end):
                self._after_failed_commit(state)
            raise
        # Committed (the journal line). state.json follows; the batch files wait for it.
        journal_size, self._journal_end = self._journal_end, self._journal_end + len(line)
        self.state, self._state_saved = state, False
        self.save_pending_state()
        if journal_size > self.settings.journal_max_bytes:
            self._compact_journal(state)

    def save_pending_state(self) -> None:
        """Write state.json when the last commit is in the journal only. Raises CommitWriteError
        ("state") while it cannot be written: until then no batch file may be deleted."""
        if self._state_saved:
            return
        try:
            with writing("state", self.settings.state_file):
                save_state(self.settings.state_file, self.state)
        except CommitWriteError as e:
            log.error(
                "state.json not written (the journal has the commit); batch files kept until it is",
                extra={"path": e.filename, "error": e.strerror, "batch_id": self.state.last_batch_id},
            )
            raise
        self._state_saved = True

    def _settle_journal(self) -> None:
        """Cut what follows the journal's last complete line (left when a cut failed) before a line
        is appended, so a line is never glued to a torn one. Raises OSError when it cannot."""
        if os.fstat(self._journal_fd).st_size > self._journal_end:
            os.ftruncate(self._journal_fd, self._journal_end)
            os.fdatasync(self._journal_fd)
            self._after_failed_commit(self.state)  # the tails of that commit too, now that they may go

    def _cut_journal(self, size: int) -> bool:
        """Cut the journal back to `size` (its last complete line) and make that durable before
        merged.csv is cut (never a journal line pointing past merged.csv). False when it could not:
        the torn line is then cut before the next write, or on start, and never read."""
        try:
            os.ftruncate(self._journal_fd, size)
            os.fdatasync(self._journal_fd)
            return True
        except OSError:
            log.exception("could not cut the journal back; its last line is cut before the next write, or on start")
            return False

    def _compact_journal(self, state: MergerState) -> None:
        """Replace the journal by its last line (atomically), so it stays small."""
        path = self.settings.journal_file
        line = orjson.dumps(state.journal_json()) + b"\n"
        try:
            atomic_write_bytes(path, line)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:  # the long journal stays, complete; compacted after a later commit
            log.warning("journal not compacted", extra={"path": str(path), "error": str(e)})
            return
        os.close(self._journal_fd)
        self._journal_fd, self._journal_end = fd, len(line)

    def _after_failed_commit(self, attempted: MergerState) -> None:
        """Cut merged.csv and rejects.csv back to their committed lengths (what is past them is
        ignored by readers and cut on start when this fails)."""
        for fd, size, name in (
            (self._fd, self.state.committed_size, "merged.csv"),
            (self._rejects_fd, self.state.rejects_committed_size, "rejects.csv"),
        ):
            try:
                os.ftruncate(fd, size)
            except OSError:
                log.exception("could not cut %s back; it is done on the next start", name)

    def _quarantine_copy(self, path: Path, raw: bytes, batch_id: int, reason: str) -> QuarantineEntry:
        """Put a durable copy of an invalid batch file and its reason in the quarantine folder. The
        original is removed only after the state records the batch, so a crash in between repeats this."""
        qdir = self.settings.quarantine_dir
        manifest = path.parent / manifest_file_name(path.name)
        if manifest.exists():
            with writing("quarantine", qdir / manifest.name):
                atomic_write_bytes(qdir / manifest.name, manifest.read_bytes())
        with writing("quarantine", qdir / path.name):
            atomic_write_bytes(qdir / path.name, raw)
            atomic_write_bytes(qdir / f"{path.name}.reason.txt", (reason + "\n").encode())
        log.warning(
            "quarantined an invalid batch file", extra={"path": str(path), "batch_id": batch_id, "reason": reason}
        )
        return QuarantineEntry(file=path.name, reason=reason, at=self.clock())

    def _prune_quarantine(self) -> None:
        """Keep the quarantine folder within quarantine_max_files batch files and quarantine_max_bytes
        (the oldest go first, with their reason and manifest; each one is logged)."""
        qdir = self.settings.quarantine_dir
        batches = []
        for p in qdir.iterdir():
            if parse_batch_name(p.name.removeprefix(_REJECTS_PREFIX)) is None:
                continue
            related = [p, qdir / f"{p.name}.reason.txt", qdir / manifest_file_name(p.name)]
            st = p.stat()
            batches.append((st.st_mtime, p.name, sum(_size(r) for r in related), related))
        batches.sort()
        total = sum(b[2] for b in batches)
        while batches and (
            len(batches) > self.settings.quarantine_max_files or total > self.settings.quarantine_max_bytes
        ):
            _, name, size, related = batches.pop(0)
            for r in related:
                r.unlink(missing_ok=True)
            total -= size
            log.warning("pruned a quarantined batch file (quarantine bound)", extra={"file": name, "bytes": size})
        fsync_dir(qdir)

    def _prune_temp_files(self) -> None:
        """Remove atomic_write_bytes' temp files left behind (a crash in the middle of a write), at
        start and after each pass: those of the merge thread's own files (quarantine/, state.json,
        the journal, merged.csv and rejects.csv when created) whatever their process id, and any
        other of another process (this one's devices.json writer may be writing its temp file now;
        one left by a crashed process of the same id, as in a container, is overwritten by it)."""
        s = self.settings
        own = (s.state_file.name, s.journal_file.name, s.merged_csv.name, s.merged_rejects.name)
        for folder in (s.merger_dir, s.quarantine_dir):
            try:
                names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
            except OSError:
                continue
            for name in names:
                m = TEMP_PATTERN.match(name)
                if m is None:
                    continue
                if folder == s.quarantine_dir or m.group(1) in own or int(m.group(2)) != os.getpid():
                    (folder / name).unlink(missing_ok=True)
                    log.info("removed a temp file left behind", extra={"path": str(folder / name)})


def _read_manifest(path: Path) -> BatchManifest | None:
    """The manifest beside a batch file with a lineage (None for a legacy name). Raises
    InvalidBatchError when it is missing or does not validate."""
    name = parse_batch_name(path.name)
    if name is None or name.lineage == LEGACY_LINEAGE:
        return None
    try:
        raw = (path.parent / manifest_file_name(path.name)).read_bytes()
    except FileNotFoundError:
        raise InvalidBatchError(f"its manifest {manifest_file_name(path.name)} is missing") from None
    try:
        manifest = BatchManifest.from_bytes(raw)
    except ValueError as e:
        raise InvalidBatchError(f"its manifest does not validate: {first_line(str(e))}") from e
    if (manifest.lineage, manifest.batch_id) != (name.lineage, name.batch_id):
        raise InvalidBatchError(f"its manifest is of {manifest.lineage} batch {manifest.batch_id}")
    return manifest


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
