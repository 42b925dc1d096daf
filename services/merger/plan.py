"""What to do next with the batch files in the input folder: pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


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
class LineagePlan:
    #: The checkpoint lineage to merge from now on.
    lineage: str
    #: Its last processed batch id (None when the merger switches to it).
    last_batch_id: int | None
    #: The id expected first when last_batch_id is None.
    first_batch_id: int
    #: Older lineages: every file of them is stale (their job is gone; what they had and the merger
    #: did not is re-read by the newer lineage, and the merged offsets drop what it already had).
    stale_lineages: tuple[str, ...]
    switched: bool


def choose_lineage(
    current: str, last_batch_id: int | None, files: Mapping[str, Iterable[int]], *, first_batch_id: int = 0
) -> LineagePlan:
    """Which lineage to merge from. Lineages sort by age (contract.csv). The current one is followed
    while its next batch is there or no newer lineage has files; then the oldest newer lineage is
    taken, from its lowest batch id (a new checkpoint starts at 0)."""
    ids = {lineage: sorted(set(batch_ids)) for lineage, batch_ids in files.items()}
    older = tuple(sorted(lin for lin in ids if lin < current))
    newer = sorted(lin for lin, batch_ids in ids.items() if lin > current and batch_ids)
    if next_expected(last_batch_id, first_batch_id) in ids.get(current, []) or not newer:
        return LineagePlan(current, last_batch_id, first_batch_id, older, switched=False)
    stale = (*older, current) if current in ids else older
    return LineagePlan(newer[0], None, ids[newer[0]][0], stale, switched=True)
