"""The merger's commit writes (services.merger.merge's protocol): the rows and reject lines written
at the committed lengths and fdatasynced, then the journal line (the commit point), then state.json;
on a failed write before the journal line, the journal and both files cut back to their committed
lengths. MergeEngine is a CommitWriter; services.merger.streamed commits a big batch through it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from contract.files import atomic_write_bytes, fsync_dir
from services.merger.errors import CommitWriteError
from services.merger.journal import Journal, journal_line
from services.merger.segments import publish_index, retired, rolled_over, to_retire
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE, MergerState, save_state
from services.merger.writes import pwrite_all, writing

log = logging.getLogger(__name__)


class CommitWriter:
    """Owns the open merged.csv, rejects.csv and journal; `state` is the last committed state."""

    settings: MergerSettings
    state: MergerState
    clock: Callable[[], float]

    def _open_outputs(self) -> None:
        self._fd = os.open(self.settings.merger_dir / self.state.active.file, os.O_WRONLY)
        self._rejects_fd = os.open(self.settings.merged_rejects, os.O_WRONLY)
        self._journal = Journal(self.settings.journal_file)
        #: False while the committed state is in the journal only (state.json not written yet).
        self._state_saved = True

    def _close_outputs(self) -> None:
        for name in ("_fd", "_rejects_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        self._journal.close()

    def _commit(self, chunks: list[bytes], state: MergerState, reject_chunks: list[bytes] | None = None) -> None:
        """Write `chunks` (and `reject_chunks` to rejects.csv) at the committed lengths, make them
        durable, then append `state` (which points past them) to the journal and fsync it (the
        commit point), then write state.json. Every write is checked (short writes too). Raises
        CommitWriteError naming the step and the file:
        - up to the journal line: the journal and both files are cut back, the old state stands;
        - at state.json: the commit stands (self.state is `state`), state.json is written by the
          next pass (save_pending_state), and the caller deletes no batch file meanwhile."""
        files = self.settings
        line = journal_line(state)
        try:
            self.settle_journal()
            if chunks:
                with writing("rows", files.merged_csv):
                    pwrite_all(self._fd, chunks, self.state.committed_size)
                    os.fdatasync(self._fd)
            if reject_chunks:
                with writing("rejects", files.merged_rejects):
                    pwrite_all(self._rejects_fd, reject_chunks, self.state.rejects_committed_size)
                    os.fdatasync(self._rejects_fd)
            with writing("journal", files.journal_file):
                journal_size = self._journal.append(line)
        except CommitWriteError as e:
            log.error(
                "commit not written, retried later",
                extra={"step": e.step, "path": e.filename, "error": e.strerror, "batch_id": state.last_batch_id},
            )
            if self._journal.cut():
                self.cut_back()
            raise
        # Committed (the journal line). state.json follows; the batch files wait for it.
        self.state, self._state_saved = state, False
        self.save_pending_state()
        if journal_size > self.settings.journal_max_bytes:
            self._journal.compact(line)

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

    def settle_journal(self) -> None:
        """Cut a torn journal tail (left when a cut failed) before a commit's first write, and then
        the tails of that commit too, now that they may go. Raises CommitWriteError ("journal")."""
        with writing("journal", self.settings.journal_file):
            if self._journal.settle():
                self.cut_back()

    def cut_back(self, *, rows_too: bool = True) -> None:
        """Cut rejects.csv (and merged.csv) back to their committed lengths (what is past them is
        ignored by readers and cut on start when this fails)."""
        cuts = [(self._rejects_fd, self.state.rejects_committed_size, "rejects.csv")]
        if rows_too:
            cuts.insert(0, (self._fd, self.state.committed_size, "merged.csv"))
        for fd, size, name in cuts:
            try:
                os.ftruncate(fd, size)
            except OSError:
                log.exception("could not cut %s back; it is done on the next start", name)

    def commit_state(self, state: MergerState) -> None:
        """Commit `state` (its rows and reject lines are written and fdatasynced already)."""
        self._commit([], state, [])

    @property
    def merged_fd(self) -> int:
        return self._fd

    @property
    def rejects_fd(self) -> int:
        return self._rejects_fd

    # -- segments (contract.segments, services.merger.segments) ----------------------------------

    def roll_over(self) -> None:
        """When segments are on and the active segment is full: close it (cut to its committed
        length, never written again) and begin the next one, in a commit of its own. A crash before
        the journal line leaves the new file outside the state (removed on start); after it, the
        new segment is the active one. Raises CommitWriteError as _commit does."""
        s = self.settings
        if not s.segment_bytes or self.state.committed_size < s.segment_bytes:
            return
        self.settle_journal()
        state = rolled_over(self.state, self.clock())
        path = s.merger_dir / state.active.file
        with writing("rollover", path):
            os.ftruncate(self._fd, self.state.committed_size)
            os.fsync(self._fd)
            path.parent.mkdir(exist_ok=True)
            atomic_write_bytes(path, HEADER_LINE)
            fd = os.open(path, os.O_WRONLY)
        try:
            self._commit([], state, [])
        except CommitWriteError as e:
            if e.step != "state":  # not committed: the new file goes (or on start)
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            self._use(fd)
            raise
        self._use(fd)
        log.info(
            "merged.csv rolled over to a new segment",
            extra={"path": str(path), "closed": state.segments[-1].file, "rows": state.segments[-1].rows},
        )
        self.publish_segments()
        self.retire()

    def _use(self, fd: int) -> None:
        old, self._fd = self._fd, fd
        os.close(old)

    def retire(self) -> None:
        """Remove the closed segments retention bounds leave out (a commit, then their files).
        Raises CommitWriteError as _commit does (the files stay until committed; on start, a file
        of a segment the state no longer lists is removed)."""
        s = self.settings
        gone = to_retire(self.state, self.clock(), s.retain_bytes, s.retain_age_s)
        if not gone:
            return
        self._commit([], retired(self.state, gone), [])
        self.publish_segments()
        for g in gone:
            g.path(s.merger_dir).unlink(missing_ok=True)
            if g.parquet is not None:  # (its compacted copy: services.merger.compaction)
                (s.merger_dir / g.parquet).unlink(missing_ok=True)
            fsync_dir(g.path(s.merger_dir).parent)
            log.warning(
                "retired a segment (retention)",
                extra={"path": g.file, "rows": g.rows, "bytes": g.size, "closed_at": g.closed_at},
            )

    def publish_segments(self) -> None:
        """Write segments.json for readers (verify) when segments are in use; a failure is logged (it
        is written again on the next change and on start)."""
        if not self.settings.segment_bytes and self.state.active.seq == 0:
            return
        try:
            publish_index(self.settings.merger_dir, self.state)
        except OSError as e:
            log.error("segments.json not written", extra={"path": str(self.settings.merger_dir), "error": str(e)})
