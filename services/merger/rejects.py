"""A batch's reject file (the Spark job's, REJECT_COLUMNS) as the lines rejects.csv gets (pure).

Each line starts with the batch id, the Kafka partition and the offset of the rejected record
(integers, never quoted); the reason and the value follow as written (a CR or LF inside a quoted
value is kept). Like rows, the lines of records already merged (services.merger.merged_offsets) are left
out: a new lineage replaying the topic rejects the same records again."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from contract.csv import REJECT_HEADER
from services.merger.batchfile import first_line, split_records
from services.merger.errors import InvalidBatchError

_HEADER: Final = REJECT_HEADER.encode()
#: batchId, partition, offset at the start of a reject line.
_KEY: Final = re.compile(rb"(\d+),(\d+),(\d+),")


@dataclass(frozen=True)
class SelectedRejects:
    #: The lines to append (each ending in "\n"), their count, and the lines left out.
    data: bytes
    kept: int
    skipped: int


def select_rejects(raw: bytes, unmerged: Callable[[int, int], bool]) -> SelectedRejects:
    """The reject lines of `raw` (a reject file, or its header and a row-bounded chunk of it) whose
    record (partition, offset) is not merged (`unmerged`). Raises InvalidBatchError when the file
    breaks the reject contract."""
    nl = raw.find(b"\n")
    header, data = (raw, b"") if nl < 0 else (raw[:nl], raw[nl + 1 :])
    if header.rstrip(b"\r") != _HEADER:
        shown = header[:300].decode("utf-8", "replace")
        raise InvalidBatchError(f"reject header is {shown!r}, expected {REJECT_HEADER!r}")
    if not data:
        return SelectedRejects(b"", 0, 0)
    if not data.endswith(b"\n"):
        data += b"\n"
    records = split_records(data)
    kept: list[bytes] = []
    for i, record in enumerate(records, start=1):
        m = _KEY.match(record)
        if m is None:
            shown = first_line(repr(record))
            raise InvalidBatchError(f"reject {i} does not start with batchId,partition,offset: {shown}")
        if unmerged(int(m.group(2)), int(m.group(3))):
            kept.append(record)
    return SelectedRejects(b"".join(kept), len(kept), len(records) - len(kept))
