"""contract.progress: the one model of spark/progress.json, round-tripped through the real writer."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from contract.progress import (
    PROGRESS_FIELDS,
    ProgressUnreadable,
    SparkProgress,
    read_progress,
    read_progress_or_none,
)
from spark_job.progress import BatchCounts, ProgressTracker

#: docs/DESIGN.md, "Files in the data folder": the keys, in order.
DESIGN_FIELDS = (
    "state",
    "startedAt",
    "updatedAt",
    "pid",
    "batchId",
    "numInputRows",
    "rowsOut",
    "rejects",
    "eventsWithoutReadings",
    "inputRowsPerSecond",
    "processedRowsPerSecond",
    "batchDurationMs",
    "endOffsets",
    "latestOffsets",
    "offsetsBehindLatest",
    "lastError",
    "totals",
)


def test_the_model_has_the_documented_keys() -> None:
    assert PROGRESS_FIELDS == DESIGN_FIELDS


def test_round_trip_of_what_the_job_writes(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    t = ProgressTracker(path, resume_batches=False, pid=77)
    t.batch_committed(3, BatchCounts(input_rows=5, rows_out=8, rejects=1, events_without_readings=0))
    t.batch_progress(
        batch_id=3,
        num_input_rows=5,
        input_rows_per_second=2.5,
        processed_rows_per_second=4.0,
        duration_ms=120,
        end_offsets={"0": 5, "1": 2},
        latest_offsets={"0": 6, "1": 2},
    )
    raw = path.read_bytes()
    doc = read_progress(path)
    assert doc is not None
    assert (doc.state, doc.pid, doc.batch_id, doc.offsets_behind_latest) == ("running", 77, 3, 1)
    assert (doc.totals.input_rows, doc.totals.rows_out, doc.totals.batches) == (5, 8, 1)
    assert doc.partition_offsets() == {0: 5, 1: 2}
    assert orjson.loads(doc.to_bytes()) == orjson.loads(raw)  # same keys, same values


def test_a_partial_or_older_document_parses_with_defaults() -> None:
    doc = SparkProgress.model_validate_json(b'{"state": "running", "someNewField": 1}')
    assert (doc.batch_id, doc.pid, doc.totals.rows_out, doc.end_offsets) == (None, None, 0, {})
    assert doc.model_dump(mode="json")["someNewField"] == 1


@pytest.mark.parametrize("raw", [b"[1]", b"{not json", b'{"state": "exploded"}', b'{"batchId": "x"}'])
def test_a_document_that_does_not_parse_is_unreadable(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "progress.json"
    path.write_bytes(raw)
    with pytest.raises(ProgressUnreadable):
        read_progress(path)
    assert read_progress_or_none(path) is None
    assert read_progress(tmp_path / "absent.json") is None
