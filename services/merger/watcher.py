"""The merge loop: file events (watchfiles) and a periodic rescan wake it; each pass runs in a worker
thread so the HTTP side stays responsive. Owns the engine, the gap tracking and the live status."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from watchfiles import Change, awatch

from contract.csv import parse_batch_file_name
from contract.merger_status import Freshness, MergerStatus, WriteBlocked
from services.merger.errors import CommitWriteError, MergeAttemptError, MergerError
from services.merger.freshness import FreshnessWindow
from services.merger.merge import MergeEngine
from services.merger.metrics import MergerMetrics
from services.merger.results import CommitResult, PassResult
from services.merger.segments import served_size
from services.merger.settings import MergerSettings
from services.merger.state import MergerState

log = logging.getLogger(__name__)

#: /merger/status shows the newest source events (state.json keeps more).
EVENTS_SHOWN = 20
#: watchfiles' step: a batch of file events is handed over once this many ms pass without a new one.
#: Measured (rename of a new batch file to the wake-up, 40 files, load 15 on 2 cores): 5 ms wakes the
#: merge loop after ~10 ms median (20 ms: ~33 ms), for +0.2% of a core while idle (0.45% against 0.25%).
WATCH_STEP_MS = 5


def _is_batch_file(change: Change, path: str) -> bool:
    return parse_batch_file_name(Path(path).name) is not None


class Watcher:
    def __init__(
        self, settings: MergerSettings, metrics: MergerMetrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.engine: MergeEngine | None = None
        self.freshness = FreshnessWindow()
        #: Why the merger cannot work at all (state and merged.csv disagree); None when fine.
        self.fatal_error: str | None = None
        #: The last I/O error of a pass (disk full...), cleared by the next successful pass.
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.newest_batch_id: int | None = None
        #: Set while a write fails (disk full...): what, where, since when; None once writes succeed.
        self.write_blocked: WriteBlocked | None = None
        self._gap: tuple[int, float] | None = None  # (missing id, since)
        self._gap_reported = False
        self._wake = asyncio.Event()
        self._stop_async = asyncio.Event()
        self._stop_thread = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.0
        while self.engine is None:
            try:
                self.engine = await asyncio.to_thread(MergeEngine, self.settings, self._on_commit, self.clock)
            except OSError as e:  # disk full while loading (a state.json to rebuild...): retried
                backoff = self._failed_write(e, backoff, "start")
                log.error("merger cannot load its state yet, retrying", extra={"error": str(e), "retry_in_s": backoff})
                await self._sleep(backoff)
                if self._stop_async.is_set():
                    return
            except MergerError as e:
                self.fatal_error = str(e)
                log.error("merger cannot start merging", extra={"error": str(e)})
                await self._stop_async.wait()
                return
        self._write_ok()
        watch = asyncio.create_task(self._watch_files(), name="merger-awatch")
        try:
            await self._merge_loop()
        except BaseException as e:
            # Never silently: not ready, with the cause, so the launcher restarts the process.
            if isinstance(e, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            self.fatal_error = f"the merge loop stopped: {type(e).__name__}: {e}"
            log.critical("the merge loop stopped", extra={"error": self.fatal_error}, exc_info=e)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            engine, self.engine = self.engine, None
            if engine is not None:
                engine.close()

    def stop(self) -> None:
        """Ask the loop to finish: the running commit completes, no new one starts."""
        self._stop_thread.set()
        self._stop_async.set()
        self._wake.set()

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.fatal_error is None

    @property
    def state(self) -> MergerState | None:
        engine = self.engine
        return engine.state if engine is not None else None

    # -- loops ------------------------------------------------------------------------------------

    async def _watch_files(self) -> None:
        """Wake the merge loop on every change of a committed batch file name in the input folder."""
        while not self._stop_async.is_set():
            try:
                async for _ in awatch(
                    self.settings.rows_dir,
                    watch_filter=_is_batch_file,
                    stop_event=self._stop_async,
                    step=WATCH_STEP_MS,
                    debounce=400,
                    recursive=False,
                    ignore_permission_denied=True,
                ):
                    self._wake.set()
            except (OSError, RuntimeError) as e:
                log.warning(
                    "file watching failed; relying on the periodic rescan",
                    extra={"path": str(self.settings.rows_dir), "error": repr(e)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_async.wait(), self.settings.rescan_interval_s)

    async def _merge_loop(self) -> None:
        backoff = 0.0
        while not self._stop_async.is_set():
            self._wake.clear()
            assert self.engine is not None
            try:
                result = await asyncio.to_thread(self.engine.run_pass, self._stop_thread)
            except Exception as e:  # disk full, a file that fails for an unexpected reason...: retried
                if isinstance(e, OSError):
                    self.metrics.io_errors.inc()
                backoff = min(max(1.0, backoff * 2), self.settings.retry_backoff_max_s)
                if isinstance(e, CommitWriteError) or (isinstance(e, OSError) and e.errno in SPACE_ERRNOS):
                    self._failed_write(e, backoff, "pass")
                self.last_error = f"{type(e).__name__}: {e}"
                self.last_error_at = self.clock()
                log.error(
                    "merge pass failed, retrying",
                    extra={"error": self.last_error, "retry_in_s": backoff},
                    exc_info=not isinstance(e, OSError | MergeAttemptError),
                )
                await self._sleep(backoff)
                continue
            if self.last_error is not None:
                log.info("merging resumed after an error", extra={"error": self.last_error})
            self.last_error = None
            self._write_ok()
            backoff = 0.0
            self._after_pass(result)
            await self._sleep(self.settings.rescan_interval_s, wake=True)

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        """Wait `seconds`, or less when stopping (or, with `wake`, when a file event arrives)."""
        waiters = [asyncio.ensure_future(self._stop_async.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    # -- bookkeeping ------------------------------------------------------------------------------

    def _after_pass(self, result: PassResult) -> None:
        plan = result.plan
        self.newest_batch_id = plan.newest
        if result.stale_removed:
            self.metrics.stale_removed.inc(result.stale_removed)
        now = self.clock()
        if plan.waiting_for is None:
            if self._gap is not None and self._gap_reported:
                log.info("gap closed", extra={"batch_id": self._gap[0]})
            self._gap, self._gap_reported = None, False
            return
        if self._gap is None or self._gap[0] != plan.waiting_for:
            self._gap, self._gap_reported = (plan.waiting_for, now), False
        if not self._gap_reported and now - self._gap[1] >= self.settings.gap_timeout_s:
            self._gap_reported = True
            log.warning(
                "waiting for a missing batch file",
                extra={
                    "batch_id": plan.waiting_for,
                    "newest_batch_id": plan.newest,
                    "waiting_s": round(now - self._gap[1], 1),
                    "path": str(self.settings.rows_dir),
                },
            )

    def _failed_write(self, error: OSError, backoff: float, step: str) -> float:
        """Record a failed write (write_blocked and the disk-full gauge); returns the next backoff."""
        if step == "start":
            backoff = min(max(1.0, backoff * 2), self.settings.retry_backoff_max_s)
            self.last_error, self.last_error_at = f"{type(error).__name__}: {error}", self.clock()
        prev = self.write_blocked
        self.write_blocked = write_blocked_of(
            error,
            step,
            self.settings.merger_dir,
            since=prev.since if prev is not None else self.clock(),
            attempts=prev.attempts + 1 if prev is not None else 1,
            retry_in_s=backoff,
        )
        self.metrics.disk_full.set(1 if error.errno in SPACE_ERRNOS else 0)
        return backoff

    def _write_ok(self) -> None:
        if self.write_blocked is not None:
            log.info("writes succeed again: merging resumed", extra={"path": self.write_blocked.folder})
        self.write_blocked = None
        self.metrics.disk_full.set(0)

    def _on_commit(self, result: CommitResult) -> None:
        """Called in the worker thread after each commit."""
        m = self.metrics
        m.merge_duration.observe(result.duration_s)
        if result.merged:
            m.batches_merged.inc(result.merged)
            m.rows_merged.inc(result.rows)
        if result.empty:
            m.empty_batches.inc(result.empty)
        if result.quarantined:
            m.quarantined.inc(len(result.quarantined))
        if result.event_times_us:
            now_us = int(result.committed_at * 1_000_000)
            times = pl.concat(result.event_times_us) if len(result.event_times_us) > 1 else result.event_times_us[0]
            fresh = (now_us - times).cast(pl.Float64) / 1_000_000
            m.freshness.observe_many(fresh)
            self.freshness.add(result.committed_at, fresh)

    # -- status -----------------------------------------------------------------------------------

    def waiting(self) -> tuple[int | None, float | None]:
        gap = self._gap
        if gap is None or self.clock() - gap[1] < self.settings.gap_timeout_s:
            return None, None
        return gap

    def status(self) -> MergerStatus:
        state = self.state
        waiting_for, waiting_since = self.waiting()
        last = None if state is None else state.last_batch_id
        newest = self.newest_batch_id if self.newest_batch_id is not None else last
        lag = 0
        if newest is not None:
            lag = max(0, newest - (last if last is not None else self.settings.first_batch_id - 1))
        return MergerStatus(
            batches_merged=0 if state is None else state.batches_merged,
            last_batch_id=last,
            rows_merged=0 if state is None else state.rows_merged,
            file_size=0 if state is None else served_size(state),
            empty_batches=0 if state is None else state.empty_batches,
            quarantined=[] if state is None else list(state.quarantined),
            newest_batch_id=newest,
            lag_batches=lag,
            waiting_for_batch=waiting_for,
            waiting_since=waiting_since,
            last_merge_at=None if state is None else state.last_merge_at,
            freshness=Freshness(**self.freshness.snapshot(self.clock())),
            last_error=self.fatal_error or self.last_error,
            lineage="" if state is None else state.lineage,
            topic=None if state is None else state.topic,
            topic_id=None if state is None else state.topic_id,
            merged_offsets={} if state is None else {str(p): o for p, o in sorted(state.next_offsets.items())},
            rows_skipped=0 if state is None else state.rows_skipped,
            events=[] if state is None else list(state.events[-EVENTS_SHOWN:]),
            write_blocked=self.write_blocked,
            segments=1 if state is None else len(state.retained),
            segments_retired=0 if state is None else state.segments_retired,
            rows_retired=0 if state is None else state.rows_retired,
            bytes_retired=0 if state is None else state.bytes_retired,
        )


#: A write that failed for want of space: the merger's folder is full (or over its quota).
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_CONDITIONS = {errno.ENOSPC: "disk full", errno.EDQUOT: "quota exceeded", errno.EIO: "I/O error"}


def write_blocked_of(
    error: OSError, step: str, merger_dir: Path, *, since: float, attempts: int, retry_in_s: float
) -> WriteBlocked:
    """/merger/status' account of a failed write: what, where (the file's folder, else the merger's)."""
    path = Path(error.filename) if isinstance(error.filename, str) and error.filename else merger_dir
    return WriteBlocked(
        condition=_CONDITIONS.get(error.errno or 0, "write failed"),
        folder=str(path.parent if path != merger_dir else merger_dir),
        path=str(path),
        step=getattr(error, "step", "") or step,
        error=error.strerror or str(error),
        errno=error.errno,
        since=since,
        attempts=attempts,
        retry_in_s=retry_in_s,
    )
