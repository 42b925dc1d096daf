"""The merger's view of its input folders each pass (a thin I/O shell around services.merger.plan):
which batch files are ready, stale (every record merged: deleted) or held (no topic id), reading each
manifest once per change; reject files left without a batch; the events of newly held batches."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from contract.batches import BatchManifest
from contract.csv import (
    LEGACY_LINEAGE,
    MANIFEST_SUFFIX,
    BatchName,
    batch_file_name,
    manifest_file_name,
    parse_batch_name,
)
from contract.merger_status import SourceEvent
from contract.progress import read_progress_or_none
from services.merger.errors import InvalidBatchError
from services.merger.manifests import ManifestCache
from services.merger.merged_offsets import current_offsets, offsets_of
from services.merger.plan import KeyedBatch, MergePlan, plan_keyed, plan_merge
from services.merger.settings import MergerSettings
from services.merger.state import MergerState
from services.merger.streamed import count_unmerged_rejects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    #: For the status: newest batch, waiting_for (legacy batches only).
    plan: MergePlan
    ready: tuple[BatchName, ...]
    stale: tuple[str, ...]  # file names
    present: frozenset[str]  # batch file names in the rows folder
    stale_rejects: tuple[str, ...] = ()  # reject file names
    held: tuple[BatchName, ...] = ()
    #: topic_id_unknown events of batches held since the last pass.
    events: tuple[SourceEvent, ...] = ()

    @property
    def files_present(self) -> int:
        return len(self.present)


def batch_file(name: BatchName) -> str:
    return batch_file_name(name.batch_id, name.lineage)


def _unmerged(state: MergerState, manifest: BatchManifest) -> bool:
    offsets = offsets_of(state, manifest.topic, manifest.topic_id)
    return offsets is None or offsets.batch_unmerged(manifest.offsets)


class BatchPlanner:
    def __init__(self, settings: MergerSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._manifests: list[str] = []
        self._manifests_cache = ManifestCache()
        #: Batch files held for an unknown topic id, already reported by an event.
        self._held_reported: set[str] = set()
        self._budget = settings.file_budget_bytes

    def scan(self) -> dict[str, dict[int, str]]:
        """Committed batch files in the input folder, by lineage and id (temp files, manifests and
        other names ignored). Remembers the manifests (a manifest may be there without its rows file)."""
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

    def progress_batch_id(self) -> int | None:
        """The newest batch id the Spark job reports (its progress.json), if readable."""
        doc = read_progress_or_none(self.settings.spark_progress)
        value = doc.batch_id if doc is not None else None
        return value if value is not None and value >= 0 else None

    def plan(self, state: MergerState) -> Planned:
        """Legacy batches (no lineage) by batch id while the state is legacy; keyed batches by their
        offsets (services.merger.plan: never by lineage name, mtime or clock)."""
        files = self.scan()
        legacy = files.pop(LEGACY_LINEAGE, {})
        present = {name for by_id in files.values() for name in by_id.values()} | set(legacy.values())
        batches = [
            KeyedBatch(BatchName(lineage, batch_id), self._manifests_cache.get(self.settings.rows_dir, name))
            for lineage, by_id in files.items()
            for batch_id, name in by_id.items()
        ]
        for manifest in self._manifests:
            rows_name = manifest.removesuffix(MANIFEST_SUFFIX) + ".csv"
            name = parse_batch_name(rows_name)
            if name is not None and name.lineage != LEGACY_LINEAGE and rows_name not in present:
                batches.append(KeyedBatch(name, self._manifests_cache.get(self.settings.rows_dir, rows_name), False))
        self._manifests_cache.keep({manifest_file_name(batch_file(b.name)) for b in batches})
        keyed = plan_keyed(batches, lambda m: _unmerged(state, m), limit=self.settings.max_group_batches)
        events = self._held_events(keyed.held)
        stale = [batch_file(n) for n in keyed.stale]
        stale_rejects = [*stale, *self._orphan_rejects(state, present | {batch_file(b.name) for b in batches})]
        if legacy and state.lineage == LEGACY_LINEAGE:
            plan = plan_merge(
                state.last_batch_id,
                list(legacy),
                first_batch_id=self.settings.first_batch_id,
                progress_batch_id=self.progress_batch_id() if not batches else None,
                limit=self.settings.max_group_batches,
            )
            stale += [legacy[i] for i in plan.stale]
            ready = tuple(BatchName(LEGACY_LINEAGE, i) for i in plan.ready) or keyed.ready
        else:  # legacy files after a keyed batch: processed before it (the legacy format's rule)
            stale += list(legacy.values())
            last = state.last_batch_id
            base = last if last is not None else self.settings.first_batch_id - 1
            pending = len(keyed.ready) + len(keyed.held)
            plan = MergePlan(ready=(), stale=(), waiting_for=None, newest=base + pending if pending else last)
            ready = keyed.ready
        return Planned(plan, ready, tuple(stale), frozenset(present), tuple(stale_rejects), keyed.held, events)

    def _held_events(self, held: tuple[BatchName, ...]) -> tuple[SourceEvent, ...]:
        """One topic_id_unknown event per batch newly held (kept in the state's events, shown in
        /merger/status), logged; the batch is planned again every pass."""
        names = {batch_file(n) for n in held}
        new = names - self._held_reported
        self._held_reported = names
        now = self.clock()
        events = []
        for n in held:
            if batch_file(n) not in new:
                continue
            detail = (
                f"{batch_file(n)}: its manifest has no topic id (the job could not ask Kafka): held, not merged "
                "nor deleted, and tried again each pass (an unknown id never counts as the same topic)"
            )
            path = self.settings.rows_dir / batch_file(n)
            log.warning(detail, extra={"event": "topic_id_unknown", "path": str(path)})
            events.append(
                SourceEvent(kind="topic_id_unknown", at=now, detail=detail, lineage=n.lineage, batch_id=n.batch_id)
            )
        return tuple(events)

    def _orphan_rejects(self, state: MergerState, batches: set[str]) -> list[str]:
        """Reject files without a rows file or a manifest (a batch whose job crashed before renaming
        them, then went elsewhere): deleted once every line's record is merged (current topic)."""
        stale = []
        current = current_offsets(state)
        try:
            with os.scandir(self.settings.rejects_dir) as it:
                names = [e.name for e in it if parse_batch_name(e.name) is not None and e.name not in batches]
        except FileNotFoundError:
            return []
        for name in names:
            try:
                if count_unmerged_rejects(self.settings.rejects_dir / name, current.unmerged, self._budget) == 0:
                    stale.append(name)
            except (OSError, InvalidBatchError):
                continue
        return sorted(stale)
