"""What a batch's manifest says about where it comes from, besides its offsets: the run counter
(`lineage_seq`, spark/lineage.json, taken once per run) and the topic's id (asked from the broker only
when the offsets say the topic may have changed, or when the known id is old)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

from contract.batches import LineageCounter, OffsetRange
from contract.files import atomic_write_bytes

log = logging.getLogger(__name__)


def take_lineage_seq(path: Path, lineage: str, *, durable: bool = True) -> int:
    """The next run counter (one more than spark/lineage.json holds; 0 when it is missing), written
    back (atomic, durable) before any batch uses it: it only moves forward, whatever the checkpoint
    or the clock do. A file that does not validate (edited by hand) is logged and replaced by a jump
    forward (the epoch in ms): the counter only orders merges, exactly once never depends on it."""
    try:
        seq = LineageCounter.from_bytes(path.read_bytes()).seq + 1
    except FileNotFoundError:
        seq = 0
    except ValueError as e:
        seq = time.time_ns() // 1_000_000
        log.error(
            "lineage counter does not validate: jumping forward", extra={"path": str(path), "seq": seq, "error": str(e)}
        )
    counter = LineageCounter(seq=seq, lineage=lineage, at=time.time())
    atomic_write_bytes(path, counter.to_bytes(), durable=durable)
    return seq


#: Ask the broker for the topic id again at least this often, whatever the offsets say.
TOPIC_ID_MAX_AGE_S: Final = 60.0


def topic_id_stale(
    known: str | None, age_s: float, previous: dict[int, OffsetRange], ranges: dict[int, OffsetRange]
) -> bool:
    """Whether to ask the broker for the topic id before this batch: when none is known, when the
    known one is older than TOPIC_ID_MAX_AGE_S, or when this batch does not continue the previous
    one partition by partition (a partition starts somewhere else than where it ended, or is new):
    what a recreated topic, or offsets reset after data loss, look like from the job."""
    return known is None or age_s >= TOPIC_ID_MAX_AGE_S or not offsets_continue(previous, ranges)


def offsets_continue(previous: dict[int, OffsetRange], ranges: dict[int, OffsetRange]) -> bool:
    """Whether this batch's ranges start, partition by partition, where the previous batch's ended."""
    if not previous or not ranges:
        return False
    return all(p in previous and r.start == previous[p].end for p, r in ranges.items())
