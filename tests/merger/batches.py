"""Batch files as the Spark job writes them (temp name + atomic rename), for the merger tests."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contract.csv import ROW_HEADER, batch_file_name

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


def write_batch(folder: Path, batch_id: int, content: str | bytes) -> Path:
    """Write a committed batch file the way the Spark job does: a temp name, then an atomic rename."""
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = folder / f".batch-{batch_id:012d}.csv.tmp"
    tmp.write_bytes(data)
    final = folder / batch_file_name(batch_id)
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
