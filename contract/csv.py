"""The CSV files the Spark job writes and the merger merges.

Batch files are named by the checkpoint lineage that wrote them and their batch id,
`batch-<lineage>-<12-digit id>.csv` (e.g. batch-1764390000123-1a2b3c4d-000000000042.csv): a new
checkpoint (batch ids restarting at 0) never reuses an old name. Each rows file starts with the two
Kafka columns (BATCH_ROW_COLUMNS) and has a manifest beside it (contract.batches). Names without a
lineage (`batch-<id>.csv`) are the legacy format: ten columns, no manifest, merged by batch id only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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

#: Where each row comes from: its Kafka record. Batch files carry them first; merged.csv does not.
KAFKA_COLUMNS: Final = ("kafkaPartition", "kafkaOffset")
BATCH_ROW_COLUMNS: Final = (*KAFKA_COLUMNS, *ROW_COLUMNS)
BATCH_ROW_HEADER: Final = ",".join(BATCH_ROW_COLUMNS)

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

#: A lineage: when the checkpoint was created (epoch ms, from a file's mtime) and its query id. A name
#: only: a restored backup or a clock stepping back makes it sort anywhere, so nothing orders batches
#: by it (the manifest's lineage_seq and offsets do: contract.batches).
LINEAGE_PATTERN: Final = r"\d{13}-[0-9a-f]{8}"
_LINEAGE_RE: Final = re.compile(f"^{LINEAGE_PATTERN}$")
_BATCH_RE: Final = re.compile(rf"^batch-(?:({LINEAGE_PATTERN})-)?(\d{{12}})\.csv$")
#: The lineage of legacy names (no lineage).
LEGACY_LINEAGE: Final = ""


@dataclass(frozen=True, order=True)
class BatchName:
    lineage: str
    batch_id: int


def make_lineage(created_ms: int, query_id: str) -> str:
    """The lineage of a checkpoint: its creation time and the first 8 hex digits of its query id."""
    lineage = f"{created_ms:013d}-{query_id.replace('-', '')[:8].lower()}"
    if not _LINEAGE_RE.match(lineage):
        raise ValueError(f"not a lineage: {lineage!r} (from {created_ms}, {query_id!r})")
    return lineage


def batch_file_name(batch_id: int, lineage: str = LEGACY_LINEAGE) -> str:
    """The name of micro-batch `batch_id`'s committed file: batch-<lineage>-000000000042.csv
    (batch-000000000042.csv without a lineage: the legacy format)."""
    if batch_id < 0:
        raise ValueError(f"batch id must be >= 0, got {batch_id}")
    if lineage and not _LINEAGE_RE.match(lineage):
        raise ValueError(f"not a lineage: {lineage!r}")
    return f"batch-{lineage}-{batch_id:012d}.csv" if lineage else f"batch-{batch_id:012d}.csv"


MANIFEST_SUFFIX: Final = ".manifest.json"


def manifest_file_name(batch_file: str) -> str:
    """The manifest beside a batch file: batch-<lineage>-<id>.manifest.json."""
    return batch_file.removesuffix(".csv") + MANIFEST_SUFFIX


def parse_batch_name(name: str) -> BatchName | None:
    """Lineage and batch id of a committed batch file name, or None for any other name (temp files,
    manifests)."""
    m = _BATCH_RE.match(name)
    return BatchName(m.group(1) or LEGACY_LINEAGE, int(m.group(2))) if m else None


def parse_batch_file_name(name: str) -> int | None:
    """The batch id of a committed batch file name (either format), or None for any other name."""
    parsed = parse_batch_name(name)
    return parsed.batch_id if parsed else None
