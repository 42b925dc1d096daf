"""The merger's durable progress (state.json) and the recovery of merged.csv on start.

Invariant: merged.csv's first `committed_size` bytes are exactly the header plus the data lines of
every merged batch up to `last_batch_id`, in order. Bytes past `committed_size` belong to an append that
was not committed (a crash or a disk-full error between the write and the state write) and are cut off.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from contract.csv import ROW_HEADER
from contract.files import atomic_write_bytes, atomic_write_json, fsync_dir, read_json
from services.merger.errors import StateCorruptError

log = logging.getLogger(__name__)

HEADER_LINE = (ROW_HEADER + "\n").encode()
STATE_VERSION = 1
#: The state keeps the newest quarantine entries only, so it stays small over a long run.
MAX_QUARANTINE_ENTRIES = 1000


@dataclass(frozen=True)
class QuarantineEntry:
    file: str
    reason: str
    at: float


@dataclass(frozen=True)
class MergerState:
    #: Changes whenever merged.csv is created anew: part of the download ETag.
    generation: str
    #: The last batch processed (merged, empty or quarantined); None before the first one.
    last_batch_id: int | None = None
    #: Bytes of merged.csv that are committed (header included).
    committed_size: int = 0
    #: Batches whose rows were appended (empty and quarantined batches are counted apart).
    batches_merged: int = 0
    rows_merged: int = 0
    empty_batches: int = 0
    quarantined: tuple[QuarantineEntry, ...] = field(default_factory=tuple)
    #: Epoch seconds of the last commit that added rows (also the download's Last-Modified).
    last_merge_at: float | None = None

    @classmethod
    def fresh(cls) -> MergerState:
        return cls(generation=uuid.uuid4().hex[:16])

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["version"] = STATE_VERSION
        return doc

    @classmethod
    def from_json(cls, doc: object) -> MergerState:
        if not isinstance(doc, dict):
            raise StateCorruptError(f"state is not a JSON object: {type(doc).__name__}")
        try:
            return cls(
                generation=str(doc["generation"]),
                last_batch_id=None if doc["last_batch_id"] is None else int(doc["last_batch_id"]),
                committed_size=int(doc["committed_size"]),
                batches_merged=int(doc["batches_merged"]),
                rows_merged=int(doc["rows_merged"]),
                empty_batches=int(doc["empty_batches"]),
                quarantined=tuple(
                    QuarantineEntry(str(q["file"]), str(q["reason"]), float(q["at"])) for q in doc["quarantined"]
                ),
                last_merge_at=None if doc["last_merge_at"] is None else float(doc["last_merge_at"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StateCorruptError(f"state has a missing or malformed field: {e!r}") from e

    def with_quarantined(self, entries: list[QuarantineEntry]) -> MergerState:
        if not entries:
            return self
        return replace(self, quarantined=(*self.quarantined, *entries)[-MAX_QUARANTINE_ENTRIES:])


def load_state(path: Path) -> MergerState | None:
    try:
        doc = read_json(path)
    except ValueError as e:  # orjson.JSONDecodeError; the file is only ever replaced atomically
        raise StateCorruptError(f"{path} is not valid JSON: {e}") from e
    return None if doc is None else MergerState.from_json(doc)


def save_state(path: Path, state: MergerState) -> None:
    """Atomically replace the state file (temp, fsync, rename, fsync folder)."""
    atomic_write_json(path, state.to_json())


def recover(state_path: Path, merged_path: Path) -> MergerState:
    """Load the state and bring merged.csv in line with it: create it with its header when new, cut
    off an uncommitted tail. Raises StateCorruptError when they cannot be reconciled safely."""
    merged_path.parent.mkdir(parents=True, exist_ok=True)
    state = load_state(state_path)
    try:
        size = merged_path.stat().st_size
    except FileNotFoundError:
        size = None

    if state is None or state.committed_size == 0:
        # Nothing committed yet. An existing merged.csv may only be a (partial) header from a crash
        # right after creating it; anything else is data we cannot account for: do not overwrite it.
        only_header = size is None or (size <= len(HEADER_LINE) and HEADER_LINE.startswith(merged_path.read_bytes()))
        if not only_header:
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
            f"(up to batch {state.last_batch_id}): restore merged.csv, or remove both to start over"
        )
    if size < state.committed_size:
        raise StateCorruptError(
            f"{merged_path} has {size} bytes, fewer than the {state.committed_size} committed: "
            "it was truncated or replaced outside the merger"
        )
    if size > state.committed_size:
        truncate_to(merged_path, state.committed_size)
        log.warning(
            "cut off an uncommitted partial append",
            extra={"path": str(merged_path), "dropped_bytes": size - state.committed_size},
        )
    return state


def truncate_to(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
