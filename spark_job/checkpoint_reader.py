"""What a micro-batch covers, read from the query's checkpoint (pure file reading, no Spark).

Spark writes `offsets/<batch id>` (the end offsets of every source, one JSON line per source after
the version and metadata lines) before it runs the batch, and `sources/0/0` (the initial offsets of
the Kafka source) when the checkpoint is created; `metadata` holds the query id. A batch covers,
per partition, [end offsets of the previous batch (or the initial offsets), its own end offsets).
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.batches import OffsetRange
from contract.csv import make_lineage


class OffsetLogError(RuntimeError):
    """The checkpoint does not say what a batch covers."""


def _last_json_line(path: Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        raise OffsetLogError(f"{path} does not exist") from None
    for line in reversed(text.splitlines()):
        line = line.strip("\x00 \t\r")
        if line.startswith("{"):
            doc = json.loads(line)
            if isinstance(doc, dict):
                return doc
    raise OffsetLogError(f"no offsets in {path}")


def _topic_offsets(path: Path, topic: str) -> dict[int, int]:
    doc = _last_json_line(path)
    offsets = doc.get(topic)
    if not isinstance(offsets, dict):
        raise OffsetLogError(f"{path} has no offsets for topic {topic!r}")
    return {int(p): int(o) for p, o in offsets.items()}


def batch_ranges(checkpoint: Path, batch_id: int, topic: str) -> dict[int, OffsetRange]:
    """Per partition, the offsets batch `batch_id` covers."""
    end = _topic_offsets(checkpoint / "offsets" / str(batch_id), topic)
    start: dict[int, int] = {}
    previous = checkpoint / "offsets" / str(batch_id - 1)
    try:
        start = _topic_offsets(previous, topic) if batch_id > 0 and previous.exists() else {}
        if not start:
            start = _topic_offsets(checkpoint / "sources" / "0" / "0", topic)
    except OffsetLogError:
        start = {}
    return {p: OffsetRange(start=min(start[p], e) if p in start else None, end=e) for p, e in sorted(end.items())}


def checkpoint_lineage(checkpoint: Path) -> str:
    """The checkpoint's lineage: when its metadata file was written, and the query id in it. A name
    only: a restored backup keeps old mtimes, so nothing orders batches by it (the sink's run
    counter, spark/lineage.json, does)."""
    path = checkpoint / "metadata"
    try:
        doc = json.loads(path.read_text())
        created_ms = path.stat().st_mtime_ns // 1_000_000
    except (OSError, ValueError) as e:
        raise OffsetLogError(f"cannot read the checkpoint's query id from {path}: {e}") from e
    return make_lineage(created_ms, str(doc["id"]))
