"""The CSV files the Spark job writes and the merger merges."""

from __future__ import annotations

import re
from typing import Final

#: One row per device reading, in this order. (eventOffset, deviceIndex) identifies a row.
ROW_COLUMNS: Final = (
    "eventId",
    "eventOffset",
    "eventPublisher",
    "customerId",
    "eventTime",
    "deviceIndex",
    "deviceId",
    "temperature",
    "measure",
    "status",
)
ROW_HEADER: Final = ",".join(ROW_COLUMNS)

#: Polars-style dtypes of the row columns (strings kept as written; eventTime parsed by consumers).
ROW_DTYPES: Final = {
    "eventId": "str",
    "eventOffset": "i64",
    "eventPublisher": "str",
    "customerId": "str",
    "eventTime": "str",
    "deviceIndex": "i32",
    "deviceId": "str",
    "temperature": "i32",
    "measure": "str",
    "status": "str",
}

#: eventTime as written: ISO-8601 UTC with microseconds, e.g. 2026-11-28T03:33:11.123456Z
EVENT_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

#: One row per rejected Kafka record.
REJECT_COLUMNS: Final = ("batchId", "partition", "offset", "reason", "value")
REJECT_HEADER: Final = ",".join(REJECT_COLUMNS)

_BATCH_RE: Final = re.compile(r"^batch-(\d{12})\.csv$")


def batch_file_name(batch_id: int) -> str:
    """The name of micro-batch `batch_id`'s committed file: batch-000000000042.csv."""
    if batch_id < 0:
        raise ValueError(f"batch id must be >= 0, got {batch_id}")
    return f"batch-{batch_id:012d}.csv"


def parse_batch_file_name(name: str) -> int | None:
    """The batch id of a committed batch file name, or None for any other name (temp files included)."""
    m = _BATCH_RE.match(name)
    return int(m.group(1)) if m else None
