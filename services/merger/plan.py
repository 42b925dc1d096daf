"""What to do next with the batch files in the input folder: pure logic, no I/O.

Keyed batches (a lineage in the name, a manifest: the job's format) are planned by their offsets
alone (`plan_keyed`), never by lineage names, file times or the clock:
- one rule deletes a batch file: every record it covers is merged for the same topic identity
  (services.merger.merged_offsets: below the mark and in no gap). Its manifest and reject file go with it.
- a batch with a record not merged is ready, whatever its lineage or batch id: a restored checkpoint
  backup's batches, a late re-run, a lineage whose name sorts "older" are merged, their records
  already merged dropped row by row. Ready batches are merged in the order they were written:
  (lineage_seq, the manifest's end offsets, batch id). Merging never waits for a missing batch:
  a later batch leaves a gap, which a batch holding it fills whenever it comes.
- a batch whose topic id is unknown (None) is held: not merged, not deleted, planned again each pass
  (the engine reports it once as a topic_id_unknown event) until its manifest names the id.
Legacy batches (batch-<id>.csv, no manifest) keep the batch-id order of `plan_merge`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from contract.batches import BatchManifest
from contract.csv import BatchName


@dataclass(frozen=True)
class MergePlan:
    #: Batch ids to process now, in order, consecutive from the next expected id.
    ready: tuple[int, ...]
    #: Batch ids at or below the last processed id (re-runs of a batch after a crash): never merged again.
    stale: tuple[int, ...]
    #: The next expected id when it is missing although a later batch exists (a gap), else None.
    waiting_for: int | None
    #: The newest batch id known (files, the Spark job's progress, or what was already merged), or None.
    newest: int | None


def next_expected(last_batch_id: int | None, first_batch_id: int = 0) -> int:
    return first_batch_id if last_batch_id is None else last_batch_id + 1


def plan_merge(
    last_batch_id: int | None,
    files: Iterable[int],
    *,
    first_batch_id: int = 0,
    progress_batch_id: int | None = None,
    limit: int | None = None,
) -> MergePlan:
    """Plan the next merge step.

    `last_batch_id` is the last batch processed (merged, empty or quarantined), None on a fresh state.
    `files` are the ids of committed batch files present in the input folder. `progress_batch_id` is the
    newest batch the Spark job reports as done: a missing expected file below it is a real gap even if
    no later file exists yet. Ready ids run consecutively from the expected id and stop at the first
    hole: a batch is never skipped."""
    ids = sorted(set(files))
    expected = next_expected(last_batch_id, first_batch_id)
    stale = tuple(i for i in ids if i < expected)
    present = {i for i in ids if i >= expected}
    ready: list[int] = []
    nxt = expected
    while nxt in present and (limit is None or len(ready) < limit):
        ready.append(nxt)
        nxt += 1
    candidates = [i for i in (ids[-1] if ids else None, progress_batch_id, last_batch_id) if i is not None]
    newest = max(candidates) if candidates else None
    waiting_for: int | None = None
    if not ready and newest is not None and newest >= expected:
        waiting_for = expected
    return MergePlan(ready=tuple(ready), stale=stale, waiting_for=waiting_for, newest=newest)


@dataclass(frozen=True)
class KeyedBatch:
    """A committed keyed batch file, or a manifest without its rows file (`has_rows` False)."""

    name: BatchName
    #: None when missing or invalid: the batch is ready (the engine quarantines it with the reason).
    manifest: BatchManifest | None
    has_rows: bool = True


@dataclass(frozen=True)
class KeyedPlan:
    #: Batches to merge now, in the order they were written.
    ready: tuple[BatchName, ...]
    #: Batches (rows files, or manifests alone) whose every record is merged: deleted.
    stale: tuple[BatchName, ...]
    #: Batches with an unknown topic id: kept and planned again.
    held: tuple[BatchName, ...]


#: Whether the batch (its manifest) may hold a record not merged for its topic identity.
Unmerged = Callable[[BatchManifest], bool]


def _seq(batch: KeyedBatch) -> int:
    m = batch.manifest
    return -1 if m is None or m.lineage_seq is None else m.lineage_seq


def merge_order(batches: Sequence[KeyedBatch]) -> list[KeyedBatch]:
    """Written order: by the job run's counter (only moves forward; -1 from a job before it), then,
    within one run, by batch id; runs with the same counter (lineages of old jobs) by the offsets
    their first batch reaches (never a time, never a name)."""
    reach: dict[tuple[int, str], int] = {}
    for b in batches:
        key = (_seq(b), b.name.lineage)
        ends = sum(r.end for r in b.manifest.offsets.values()) if b.manifest is not None else -1
        reach[key] = min(reach.get(key, ends), ends)
    return sorted(batches, key=lambda b: (_seq(b), reach[(_seq(b), b.name.lineage)], b.name.lineage, b.name.batch_id))


def plan_keyed(batches: Sequence[KeyedBatch], unmerged: Unmerged, *, limit: int | None = None) -> KeyedPlan:
    """Plan the keyed batches: ready (at most `limit`), stale and held (see the module docstring).
    `unmerged(manifest)` says whether a batch covers a record not merged for its topic identity."""
    ready: list[BatchName] = []
    stale: list[BatchName] = []
    held: list[BatchName] = []
    for batch in merge_order(batches):
        m = batch.manifest
        if m is None and not batch.has_rows:
            stale.append(batch.name)  # a manifest alone that does not validate: no batch can use it
        elif m is not None and m.topic_id is None:
            if batch.has_rows:
                held.append(batch.name)
        elif m is not None and not unmerged(m):
            stale.append(batch.name)
        elif batch.has_rows and (limit is None or len(ready) < limit):
            ready.append(batch.name)
    return KeyedPlan(tuple(ready), tuple(stale), tuple(held))
