"""merged.csv in segments (contract.segments), the pure part: how a commit grows the active segment,
what a rollover and a retention make of the state, and the index published for readers.

Rollover is by size: before a commit, a segment holding MERGER_SEGMENT_BYTES or more is closed and a
new one (header only) becomes the active one, in a commit of its own (services.merger.commit). A
segment therefore holds at most segment_bytes plus one commit (max_group_bytes, or one big batch).
Retention removes closed segments, oldest first, while they hold more than retain_bytes or closed
more than retain_age_s ago; the active one is never removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from contract.files import atomic_write_json
from contract.segments import SEGMENT_INDEX, Segment, SegmentIndex, segment_file
from services.merger.compacted import Part, segment_part
from services.merger.merged_offsets import merge_bounds
from services.merger.state import HEADER_LINE, MAX_RETIRED_SEGMENTS, MergerState


def grown(
    active: Segment,
    rows: int,
    size: int,
    offsets: Mapping[int, tuple[int, int]],
    event_time_us: tuple[int, int] | None,
) -> Segment:
    """`active` once a commit appended `rows` rows (to `size` committed bytes) of these bounds."""
    if not rows and size == active.size:
        return active
    bounds = dict(active.offsets)
    merge_bounds(bounds, offsets)
    times = active.event_time_us
    if event_time_us is not None:
        times = event_time_us if times is None else (min(times[0], event_time_us[0]), max(times[1], event_time_us[1]))
    return active.model_copy(
        update={"rows": active.rows + rows, "size": size, "offsets": bounds, "event_time_us": times}
    )


def rolled_over(state: MergerState, now: float) -> MergerState:
    """The state once the active segment is closed and an empty one (header only) follows it."""
    old = state.active.model_copy(update={"size": state.committed_size, "closed_at": now})
    seq = old.seq + 1
    new = Segment(seq=seq, file=segment_file(seq), start=state.merged_size, size=len(HEADER_LINE), opened_at=now)
    return replace(
        state,
        segments=(*state.segments, old),
        active=new,
        committed_size=len(HEADER_LINE),
        commit_seq=state.commit_seq + 1,
    )


def to_retire(state: MergerState, now: float, retain_bytes: int, retain_age_s: float) -> tuple[Segment, ...]:
    """The closed segments retention removes now, oldest first (0: no bound of that kind)."""
    if not retain_bytes and not retain_age_s:
        return ()
    total = sum(g.size for g in state.segments)
    out = []
    for g in state.segments:
        too_big = bool(retain_bytes) and total > retain_bytes
        too_old = bool(retain_age_s) and g.closed_at is not None and now - g.closed_at > retain_age_s
        if not (too_big or too_old):
            break
        out.append(g)
        total -= g.size
    return tuple(out)


def retired(state: MergerState, gone: tuple[Segment, ...]) -> MergerState:
    """The state once `gone` (the oldest closed segments) are retired."""
    if not gone:
        return state
    return replace(
        state,
        segments=state.segments[len(gone) :],
        retired=(*state.retired, *gone)[-MAX_RETIRED_SEGMENTS:],
        rows_retired=state.rows_retired + sum(g.rows for g in gone),
        bytes_retired=state.bytes_retired + sum(g.size - len(HEADER_LINE) for g in gone),
        segments_retired=state.segments_retired + len(gone),
        commit_seq=state.commit_seq + 1,
    )


def index_of(state: MergerState) -> SegmentIndex:
    return SegmentIndex(
        generation=state.generation,
        segments=[*state.segments, state.active.model_copy(update={"size": state.committed_size})],
        retired=list(state.retired),
        rows_retired=state.rows_retired,
        bytes_retired=state.bytes_retired,
        segments_retired=state.segments_retired,
    )


def publish_index(merger_dir: Path, state: MergerState) -> None:
    """Write segments.json (atomically). Raises OSError."""
    atomic_write_json(merger_dir / SEGMENT_INDEX, index_of(state).model_dump(mode="json"))


def stream_parts(state: MergerState, merger_dir: Path) -> list[Part]:
    """merged.csv as the retained segments make it: the header line once (the first segment's),
    then each one's committed data lines, oldest first. With one segment: merged.csv's committed
    prefix, as one part. A compacted segment whose CSV is removed is read from its Parquet copy."""
    header = len(HEADER_LINE)
    retained = state.retained
    if len(retained) == 1:
        return [segment_part(retained[0], merger_dir, 0, state.committed_size)]
    parts: list[Part] = [segment_part(retained[0], merger_dir, 0, header)]
    for g in retained:
        size = state.committed_size if g.seq == state.active.seq else g.size
        if size > header:
            parts.append(segment_part(g, merger_dir, header, size - header))
    return parts


def served_size(state: MergerState) -> int:
    """The bytes GET /merged.csv serves: committed_size while there is one segment."""
    return sum(p.length for p in stream_parts(state, Path()))
