"""Batch files as the Spark job writes them (temp name + atomic rename), for the merger tests."""

from __future__ import annotations

import os
from pathlib import Path

from contract.csv import ROW_HEADER, batch_file_name

HEADER_LINE = ROW_HEADER + "\n"


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
