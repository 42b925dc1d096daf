"""journal.jsonl, the merger's commit point: one line per commit (the state without its quarantine and
event lists), appended after merged.csv is fsynced and before state.json is replaced (see
services.merger.state). A line is complete only with its final newline: a torn line (a short write,
a full disk, a crash in the middle of the write) is never read, and is cut off before the next line
is appended or on start. The journal is replaced by its last line once it grows past a bound."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from contract.files import atomic_write_bytes
from services.merger.errors import StateCorruptError
from services.merger.state import MergerState
from services.merger.writes import truncate_to, write_all

log = logging.getLogger(__name__)

#: The journal's last line is looked for in this many bytes from its end (a line is < 2 KiB).
JOURNAL_TAIL_BYTES = 64 * 1024


def journal_line(state: MergerState) -> bytes:
    return orjson.dumps(state.journal_json()) + b"\n"


def load_journal(path: Path) -> MergerState | None:
    """The state of the journal's last complete, valid line (None without one). What follows the
    last newline is a torn line and is never read, even when it parses. The tail read grows until it
    holds a whole line (a line listing many segments is longer than the usual tail)."""
    window = JOURNAL_TAIL_BYTES
    while True:
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - window))
                tail = f.read()
        except FileNotFoundError:
            return None
        lines = tail.split(b"\n")[:-1]  # the last piece: "" after a complete line, else a torn one
        if size <= window or len(lines) >= 2:
            break
        window *= 4
    for line in reversed(lines[1:] if size > window else lines):
        if not line.strip():
            continue
        try:
            return MergerState.from_json(orjson.loads(line))
        except (ValueError, StateCorruptError):
            log.warning("skipped an unreadable journal line", extra={"path": str(path), "bytes": len(line)})
    return None


def cut_torn_journal(path: Path) -> int:
    """Cut a torn last line (bytes after the last newline: a short write or a crash in the middle
    of one) off the journal, so it is never trusted and the next line starts on its own line.
    Returns the bytes cut off."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            f.seek(0)
            keep = f.read().rfind(b"\n") + 1  # bounded: the journal is compacted past journal_max_bytes
    except FileNotFoundError:
        return 0
    truncate_to(path, keep)
    log.warning("cut off a torn journal line", extra={"path": str(path), "dropped_bytes": size - keep})
    return size - keep


class Journal:
    """The merge thread's open journal: `end` is its length up to its last complete line (anything
    past it is cut before a line is appended)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.end = os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def settle(self) -> bool:
        """Cut what follows the last complete line (left when a cut failed) before a line is
        appended, so a line is never glued to a torn one. True when it cut something (the caller
        then cuts that commit's tails too). Raises OSError when it cannot."""
        if os.fstat(self.fd).st_size <= self.end:
            return False
        os.ftruncate(self.fd, self.end)
        os.fdatasync(self.fd)
        return True

    def append(self, line: bytes) -> int:
        """Append `line` and make it durable (the commit point); returns the length before it.
        Raises OSError (a torn line may be left: cut by settle, cut or on start)."""
        write_all(self.fd, line)
        os.fdatasync(self.fd)
        before, self.end = self.end, self.end + len(line)
        return before

    def cut(self) -> bool:
        """Cut the journal back to its last complete line and make that durable before merged.csv is
        cut (never a journal line pointing past merged.csv). False when it could not: the torn line
        is then cut before the next write, or on start, and never read."""
        try:
            os.ftruncate(self.fd, self.end)
            os.fdatasync(self.fd)
            return True
        except OSError:
            log.exception("could not cut the journal back; its last line is cut before the next write, or on start")
            return False

    def compact(self, line: bytes) -> None:
        """Replace the journal by `line` (its last one), atomically, so it stays small."""
        try:
            atomic_write_bytes(self.path, line)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:  # the long journal stays, complete; compacted after a later commit
            log.warning("journal not compacted", extra={"path": str(self.path), "error": str(e)})
            return
        os.close(self.fd)
        self.fd, self.end = fd, len(line)
