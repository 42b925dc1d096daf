"""The merger's recovery on start: the state (the newer of state.json and the journal's last
complete line) and merged.csv and rejects.csv brought in line with it (created with their header
when new, an uncommitted tail cut off). See services.merger.state for the invariant."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from contract.files import atomic_write_bytes, fsync_dir
from contract.merger_status import SourceEvent
from contract.segments import SEGMENTS_DIR, segment_file, segment_seq
from services.merger.errors import StateCorruptError
from services.merger.journal import cut_torn_journal, load_journal
from services.merger.state import (
    HEADER_LINE,
    REJECTS_HEADER_LINE,
    MergerState,
    load_state,
    quarantine_entries,
    save_state,
)
from services.merger.writes import truncate_to

log = logging.getLogger(__name__)


def recover(
    state_path: Path,
    merged_path: Path,
    journal_path: Path | None = None,
    quarantine_dir: Path | None = None,
    rejects_path: Path | None = None,
) -> MergerState:
    """Load the state (the newer of state.json and the journal) and bring merged.csv (and rejects.csv)
    in line with it: create them with their header when new, cut off an uncommitted tail. Raises
    StateCorruptError when they cannot be reconciled safely."""
    state = _recover_merged(state_path, merged_path, journal_path, quarantine_dir)
    _recover_segments(merged_path.parent, state)
    if rejects_path is not None:
        state = _recover_rejects(state_path, rejects_path, state)
    return state


def _recover_rejects(state_path: Path, path: Path, state: MergerState) -> MergerState:
    """rejects.csv follows state.rejects_committed_size as merged.csv follows committed_size. A state
    from before rejects.csv existed (0) gets the file with its header."""
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    if state.rejects_committed_size == 0:
        if not _only_header(path, size, REJECTS_HEADER_LINE):
            raise StateCorruptError(
                f"{path} exists ({size} bytes) but {state_path} has no committed rejects: "
                "move rejects.csv away (or restore state.json) and restart"
            )
        atomic_write_bytes(path, REJECTS_HEADER_LINE)
        state = replace(state, rejects_committed_size=len(REJECTS_HEADER_LINE))
        save_state(state_path, state)
        log.info("created rejects.csv with its header", extra={"path": str(path)})
        return state
    if size is None or size < state.rejects_committed_size:
        raise StateCorruptError(
            f"{path} has {size or 0} bytes, fewer than the {state.rejects_committed_size} committed: it was "
            "removed, truncated or replaced outside the merger (restore it, or remove merged.csv, rejects.csv, "
            "state.json and journal.jsonl to start over)"
        )
    cut_back(path, size, state.rejects_committed_size)
    return state


def _recover_merged(
    state_path: Path, merged_path: Path, journal_path: Path | None, quarantine_dir: Path | None
) -> MergerState:
    merged_path.parent.mkdir(parents=True, exist_ok=True)
    state = load_state(state_path)
    if journal_path is not None:
        cut_torn_journal(journal_path)
    journaled = load_journal(journal_path) if journal_path is not None else None
    if journaled is not None and (state is None or journaled.commit_seq > state.commit_seq):
        detail = (
            f"{state_path.name} {'is missing' if state is None else 'is older than the journal'}: rebuilt from "
            f"{journal_path.name if journal_path else 'the journal'} (commit {journaled.commit_seq}, "
            f"{journaled.committed_size} bytes, offsets {journaled.next_offsets})"
        )
        log.warning("state rebuilt from the journal", extra={"detail": detail})
        quarantined = state.quarantined if state is not None else ()
        if not quarantined and quarantine_dir is not None:
            quarantined = quarantine_entries(quarantine_dir)
        events = state.events if state is not None else ()
        state = replace(journaled, quarantined=quarantined, events=events).with_events(
            [
                SourceEvent(
                    kind="state_rebuilt",
                    at=time.time(),
                    detail=detail,
                    lineage=journaled.lineage,
                    batch_id=journaled.last_batch_id,
                )
            ]
        )
        save_state(state_path, state)
    if state is not None and state.active.seq > 0:
        merged_path = merged_path.parent / state.active.file  # the active segment (contract.segments)
    try:
        size = merged_path.stat().st_size
    except FileNotFoundError:
        size = None

    if state is None or state.committed_size == 0:
        # Nothing committed yet. An existing merged.csv may only be a (partial) header from a crash
        # right after creating it; anything else is data we cannot account for: do not overwrite it.
        if not _only_header(merged_path, size, HEADER_LINE):
            raise StateCorruptError(
                f"{merged_path} exists ({size} bytes) but {state_path} has no committed progress: "
                "move merged.csv away (or restore state.json) and restart"
            )
        state = state or MergerState.fresh()
        atomic_write_bytes(merged_path, HEADER_LINE)
        state = replace(state, committed_size=len(HEADER_LINE))
        save_state(state_path, state)
        log.info("created merged.csv with its header", extra={"path": str(merged_path)})
        return state

    if size is None:
        raise StateCorruptError(
            f"{merged_path} is missing but {state_path} records {state.committed_size} committed bytes "
            f"(up to batch {state.last_batch_id}): restore merged.csv, or remove it, state.json and "
            "journal.jsonl to start over"
        )
    if size < state.committed_size:
        raise StateCorruptError(
            f"{merged_path} has {size} bytes, fewer than the {state.committed_size} committed: "
            "it was truncated or replaced outside the merger"
        )
    cut_back(merged_path, size, state.committed_size)
    return state


def _only_header(path: Path, size: int | None, header: bytes) -> bool:
    """The file is missing or holds at most its (partial) header: a crash right after creating it."""
    return size is None or (size <= len(header) and header.startswith(path.read_bytes()))


def cut_back(path: Path, size: int, committed: int) -> None:
    """Cut `path` (`size` bytes now) back to its `committed` length: what is past it belongs to an
    append that was not committed (a crash or a disk-full error before the commit)."""
    if size > committed:
        truncate_to(path, committed)
        log.warning(
            "cut off an uncommitted partial append", extra={"path": str(path), "dropped_bytes": size - committed}
        )


def _recover_segments(merger_dir: Path, state: MergerState) -> None:
    """Closed segments must be whole (they are never written again, so never cut); a segment file
    the state does not list is removed: one a rollover created but did not commit (newer than the
    active one), or one retention retired before its file was removed (older)."""
    for g in state.segments:
        path = g.path(merger_dir)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        if size < g.size and (g.csv_kept or g.parquet is None):
            raise StateCorruptError(
                f"{path} is a closed segment of {g.size} bytes ({g.rows} rows) but has {max(size, 0)}: it was "
                "removed or truncated outside the merger (restore it, or remove the merger folder to start over)"
            )
        if g.parquet is not None and not (merger_dir / g.parquet).is_file():
            raise StateCorruptError(
                f"{merger_dir / g.parquet} is the Parquet copy of a closed segment ({g.rows} rows) but is missing: "
                "it was removed outside the merger (restore it, or remove the merger folder to start over)"
            )
    listed = {g.seq for g in state.retained}
    # (CSV files compaction removed after its commit, and Parquet files or temp files not committed)
    strays = [merger_dir / g.file for g in state.segments if not g.csv_kept and g.parquet is not None]
    if 0 not in listed:
        strays.append(merger_dir / segment_file(0))
    copies = {g.parquet for g in state.segments if g.parquet is not None}
    folder = merger_dir / SEGMENTS_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            seq = segment_seq(p.name)
            if (seq is not None and seq not in listed) or _uncommitted_copy(p, merger_dir, copies):
                strays.append(p)
    for path in strays:
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)
            log.warning(
                "removed a segment file the state does not list (a rollover or compaction not committed, retired, "
                "or a CSV compaction removed)",
                extra={"path": str(path)},
            )


def _uncommitted_copy(path: Path, merger_dir: Path, committed: set[str]) -> bool:
    """A compaction's temp file, or a Parquet copy no committed segment names (services.merger.compaction)."""
    name = path.name
    if name.startswith(".merged-") and name.endswith(".parquet.tmp"):
        return True
    return name.startswith("merged-") and name.endswith(".parquet") and f"{SEGMENTS_DIR}/{name}" not in committed
