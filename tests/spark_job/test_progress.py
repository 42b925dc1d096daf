"""progress.json: exact fields, states, totals across restarts without double counting."""

from __future__ import annotations

import json
from pathlib import Path

from contract.progress import PROGRESS_FIELDS
from spark_job.progress import BatchCounts, ProgressListener, ProgressTracker, flatten_offsets, offsets_behind


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1
        return self.t


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_fields_states_and_batch_progress(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    t = ProgressTracker(path, resume_batches=False, clock=Clock(), pid=4242)
    t.starting()
    doc = read(path)
    assert tuple(doc) == PROGRESS_FIELDS
    assert (doc["state"], doc["pid"], doc["batchId"]) == ("starting", 4242, None)
    t.running()
    t.batch_committed(0, BatchCounts(input_rows=10, rows_out=15, rejects=1, events_without_readings=2))
    t.batch_progress(
        batch_id=0,
        num_input_rows=10,
        input_rows_per_second=5.0,
        processed_rows_per_second=float("nan"),
        duration_ms=120,
        end_offsets={"0": 6, "1": 4},
        latest_offsets={"0": 9, "1": 4},
    )
    doc = read(path)
    assert tuple(doc) == PROGRESS_FIELDS
    assert doc["state"] == "running"
    assert doc["startedAt"] < doc["updatedAt"]
    assert (doc["batchId"], doc["numInputRows"], doc["rowsOut"], doc["rejects"], doc["eventsWithoutReadings"]) == (
        0, 10, 15, 1, 2,
    )  # fmt: skip
    assert (doc["inputRowsPerSecond"], doc["processedRowsPerSecond"], doc["batchDurationMs"]) == (5.0, 0.0, 120)
    assert (doc["endOffsets"], doc["latestOffsets"], doc["offsetsBehindLatest"]) == (
        {"0": 6, "1": 4},
        {"0": 9, "1": 4},
        3,
    )
    assert doc["totals"] == {"inputRows": 10, "rowsOut": 15, "rejects": 1, "eventsWithoutReadings": 2, "batches": 1}
    t.failed("boom")
    t.stopped()  # the failure stays the news
    assert (read(path)["state"], read(path)["lastError"]) == ("failed", "boom")


def test_totals_survive_restarts_and_count_a_rerun_batch_once(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    one = BatchCounts(input_rows=1, rows_out=2, rejects=0, events_without_readings=0)
    t = ProgressTracker(path, resume_batches=False)
    t.batch_committed(0, one)
    t.batch_committed(1, one)  # then a crash before Spark committed batch 1

    t = ProgressTracker(path, resume_batches=True)
    assert read(path)["totals"]["batches"] == 2
    t.starting()
    assert (read(path)["state"], read(path)["lastError"]) == ("starting", None)
    t.batch_committed(1, one)  # the re-run of batch 1
    t.batch_committed(2, one)
    assert read(path)["totals"] == {
        "inputRows": 3,
        "rowsOut": 6,
        "rejects": 0,
        "eventsWithoutReadings": 0,
        "batches": 3,
    }

    t = ProgressTracker(path, resume_batches=False)  # a new checkpoint: batch ids start again at 0
    t.batch_committed(0, one)
    assert read(path)["totals"]["batches"] == 4


def test_offsets_helpers() -> None:
    assert flatten_offsets('{"device-events":{"1":5,"0":7,"10":1}}') == {"0": 7, "1": 5, "10": 1}
    assert flatten_offsets(None) == {}
    assert offsets_behind({"0": 7}, {"0": 9, "1": 2}) == 4
    assert offsets_behind({"0": 7}, {}) is None


def test_the_listener_reads_a_progress_as_spark_writes_its_json(tmp_path: Path) -> None:
    """The listener gets each progress as the JVM's StreamingQueryProgress.json, parsed: offsets are
    objects (not text), and a rate Spark cannot compute (NaN) is left out of the JSON."""
    path = tmp_path / "progress.json"
    t = ProgressTracker(path, resume_batches=False, clock=Clock())
    t.batch_committed(3, BatchCounts(input_rows=10, rows_out=20, rejects=0, events_without_readings=1))
    listener = ProgressListener(t, "devicestream")
    progress = {
        "name": "devicestream",
        "batchId": 3,
        "numInputRows": 10,
        "processedRowsPerSecond": 80.5,
        "durationMs": {"triggerExecution": 120, "addBatch": 90},
        "sources": [
            {
                "startOffset": {"device-events": {"0": 2, "1": 5}},
                "endOffset": {"device-events": {"1": 5, "0": 7}},
                "latestOffset": {"device-events": {"0": 9, "1": 5}},
            }
        ],
    }
    listener.on_progress({**progress, "name": "another query", "batchId": 99})
    assert read(path)["batchId"] == 3 and read(path)["endOffsets"] == {}
    listener.on_progress(progress)
    doc = read(path)
    assert doc["endOffsets"] == {"0": 7, "1": 5} and doc["latestOffsets"] == {"0": 9, "1": 5}
    assert doc["offsetsBehindLatest"] == 2
    assert doc["inputRowsPerSecond"] == 0.0 and doc["processedRowsPerSecond"] == 80.5
    assert doc["batchDurationMs"] == 120
    listener.on_progress({"name": "devicestream"})  # (no batchId: logged, never raised into Spark)


def test_the_listener_still_reads_pysparks_own_event(tmp_path: Path) -> None:
    """Had pyspark stopped using the listener's `_jlistener` bridge, its converted event still counts."""
    from pyspark.sql.streaming.listener import QueryProgressEvent, StreamingQueryProgress

    path = tmp_path / "progress.json"
    listener = ProgressListener(ProgressTracker(path, resume_batches=False, clock=Clock()), "devicestream")
    doc = {"id": "00000000-0000-0000-0000-000000000001", "runId": "00000000-0000-0000-0000-000000000002",
           "name": "devicestream", "timestamp": "2026-12-03T00:00:00.000Z", "batchId": 0, "batchDuration": 5,
           "durationMs": {}, "stateOperators": [], "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
           "sources": [{"description": "KafkaV2", "startOffset": None, "endOffset": {"t": {"0": 4}},
                        "latestOffset": {"t": {"0": 6}}, "numInputRows": 4, "inputRowsPerSecond": 1.0,
                        "processedRowsPerSecond": 2.0}]}  # fmt: skip
    listener.onQueryProgress(QueryProgressEvent(progress=StreamingQueryProgress.fromJson(doc)))
    assert read(path)["endOffsets"] == {"0": 4} and read(path)["offsetsBehindLatest"] == 2


def test_offsets_that_are_not_json_are_ignored() -> None:
    assert flatten_offsets("None") == {}
