"""Batch files as the Spark job writes them (temp name + atomic rename), for the merger tests."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contract.batches import BatchManifest, OffsetRange
from contract.csv import BATCH_ROW_HEADER, ROW_HEADER, batch_file_name, make_lineage, manifest_file_name

HEADER_LINE = ROW_HEADER + "\n"
T0 = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)


def rows(batch_id: int, n: int, *, event_time: str = "2026-11-28T03:33:11.123456Z") -> str:
    """`n` valid data lines, distinct across batches (eventOffset derives from the batch id)."""
    return "".join(
        f"{batch_id:08x}-{i:04x}-4000-8000-000000000000,{10_000 + batch_id * 10_000 + i // 3},device,"
        f"CI{100 + i % 21:05d},{event_time},{i % 3},D{1 + i % 5:03d},{i % 31},C,"
        f"{('SUCCESS', 'ERROR', 'STANDBY', '')[i % 4]}\n"
        for i in range(n)
    )


def batch_text(batch_id: int, n: int) -> str:
    return HEADER_LINE + rows(batch_id, n)


def write_batch(folder: Path, batch_id: int, content: str | bytes, *, name: str | None = None) -> Path:
    """Write a committed batch file the way the Spark job does: a temp name, then an atomic rename."""
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    final = folder / (name or batch_file_name(batch_id))
    tmp = folder / f".{final.name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, final)
    return final


def batch_rows(batch_id: int, n: int, rnd: random.Random) -> str:
    """Rows whose eventTime moves forward about 5 s per batch, some late by up to 2 minutes;
    5 devices and some rows without one; every status and some without."""
    out = []
    for i in range(n):
        late = rnd.random() < 0.05
        t = T0 + timedelta(
            seconds=batch_id * 5 - (rnd.randrange(120) if late else 0), microseconds=rnd.randrange(5_000_000)
        )
        device = rnd.choice(["D001", "D002", "D003", "D004", "D005", "D005", ""])
        status = rnd.choice(["SUCCESS", "ERROR", "ERROR", "STANDBY", ""])
        out.append(
            f"{batch_id:08x}-{i:04x}-4000-8000-000000000000,{10_000 + batch_id * 10_000 + i},device,"
            f"CI{100 + rnd.randrange(21):05d},{t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')},0,{device},"
            f"{rnd.randrange(31)},C,{status}\n"
        )
    return "".join(out)


# -- keyed batch files (the current format: Kafka columns, a lineage in the name, a manifest) -----

LINEAGE_A = make_lineage(1764390000000, "aaaaaaaa")
LINEAGE_B = make_lineage(1764390999000, "bbbbbbbb")


def keyed_row(partition: int, offset: int, device: str = "D001") -> str:
    """merged.csv's row of Kafka record (partition, offset): eventOffset derives from both."""
    return (
        f"{partition:08x}-{offset:04x}-4000-8000-000000000000,{10_000 + partition * 1_000_000 + offset},device,"
        f"CI00100,2026-11-28T03:33:11.123456Z,0,{device},{offset % 31},C,SUCCESS\n"
    )


def keyed_rows(ranges: dict[int, tuple[int, int]]) -> str:
    return "".join(keyed_row(p, o) for p, (start, end) in sorted(ranges.items()) for o in range(start, end))


def write_keyed_batch(
    folder: Path,
    lineage: str,
    batch_id: int,
    ranges: dict[int, tuple[int, int]],
    *,
    topic: str = "device-events",
    topic_id: str | None = "topic-1",
    rows: str | None = None,
    lineage_seq: int | None = None,
) -> Path:
    """A batch covering `ranges` ({partition: (start, end)}), one row per record unless `rows` (the
    data lines with their Kafka columns) says otherwise; the manifest first, then the rows file."""
    name = batch_file_name(batch_id, lineage)
    if rows is None:
        rows = "".join(f"{p},{o},{keyed_row(p, o)}" for p, (s, e) in sorted(ranges.items()) for o in range(s, e))
    manifest = BatchManifest(
        lineage=lineage,
        batch_id=batch_id,
        lineage_seq=lineage_seq,
        topic=topic,
        topic_id=topic_id,
        offsets={p: OffsetRange(start=s, end=e) for p, (s, e) in ranges.items()},
        input_records=sum(e - s for s, e in ranges.values()),
        rows=rows.count("\n"),
        rejects=0,
        written_at=0.0,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / manifest_file_name(name)).write_bytes(manifest.to_bytes())
    return write_batch(folder, batch_id, BATCH_ROW_HEADER + "\n" + rows, name=name)
