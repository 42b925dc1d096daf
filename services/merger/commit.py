"""The merger's commit writes (services.merger.merge's protocol): the rows and reject lines written
at the committed lengths and fdatasynced, then the journal line (the commit point), then state.json;
on a failed write before the journal line, the journal and both files cut back to their committed
lengths. MergeEngine is a CommitWriter; services.merger.streamed commits a big batch through it."""

from __future__ import annotations

import logging
import os

from services.merger.errors import CommitWriteError
from services.merger.journal import Journal, journal_line
from services.merger.settings import MergerSettings
from services.merger.state import MergerState, save_state
from services.merger.writes import pwrite_all, writing

log = logging.getLogger(__name__)


class CommitWriter:
    """Owns the open merged.csv, rejects.csv and journal; `state` is the last committed state."""

    settings: MergerSettings
    state: MergerState

    def _open_outputs(self) -> None:
        self._fd = os.open(self.settings.merged_csv, os.O_WRONLY)
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
