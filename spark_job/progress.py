"""progress.json: the job's latest progress, read by the launcher, the gateway and the merger.

The document is contract.progress.SparkProgress (the fields listed in docs/DESIGN.md). Three writers feed one
`ProgressTracker` (thread-safe; each update replaces the file atomically):
- the job's main thread: state starting -> running -> stopped | failed;
- the sink, once a batch's files are committed: batchId and the counts, added to `totals`;
- a StreamingQueryListener: rates, duration and Kafka offsets of each finished batch. Its progress
  events cross py4j as one JSON string each (`ProgressListener._jlistener`): pyspark's own
  conversion makes a py4j call per field, which at four micro-batches a second kept a quarter of
  the driver's Python busy beside the sink.

`totals` accumulate across restarts and count each batch id once: a batch re-run after a crash
(same id, same records) is not added again when the previous document already counted it. A
fresh checkpoint (batch ids start again at 0) keeps the totals and counts its batches anew.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pyspark import SparkContext
from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.streaming.listener import JStreamingQueryListener

from contract.progress import ProgressState, ProgressTotals, SparkProgress, read_progress_or_none

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchCounts:
    """What one micro-batch read and wrote."""

    input_rows: int
    rows_out: int
    rejects: int
    events_without_readings: int


def flatten_offsets(offsets: str | Mapping[str, Any] | None) -> dict[str, int]:
    """Kafka source offsets {"topic": {"0": 12, ...}} (as JSON text, or parsed) -> {"0": 12, ...}
    (one topic is subscribed)."""
    if not offsets:
        return {}
    if isinstance(offsets, Mapping):
        parsed: Any = offsets
    else:
        try:
            parsed = orjson.loads(offsets)
        except orjson.JSONDecodeError:  # e.g. no latest offset known yet
            return {}
    out: dict[str, int] = {}
    if isinstance(parsed, dict):
        for partitions in parsed.values():
            if isinstance(partitions, dict):
                out.update({str(p): int(o) for p, o in partitions.items()})
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def offsets_behind(end: Mapping[str, int], latest: Mapping[str, int]) -> int | None:
    if not latest:
        return None
    return sum(max(0, off - end.get(p, 0)) for p, off in latest.items())


class ProgressTracker:
    def __init__(
        self,
        path: Path,
        *,
        resume_batches: bool,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
    ) -> None:
        """`resume_batches`: the checkpoint already has batches, so batch ids continue from the
        previous document's batchId (a re-run of that batch is not counted twice). A previous
        document that does not parse counts as none."""
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        prev = read_progress_or_none(path) or SparkProgress()
        self._last_counted = prev.batch_id if resume_batches and prev.batch_id is not None else -1
        now = clock()
        self._doc = SparkProgress(
            state="starting",
            started_at=now,
            updated_at=now,
            pid=pid if pid is not None else os.getpid(),
            batch_id=prev.batch_id if resume_batches else None,
            end_offsets=prev.end_offsets,
            latest_offsets=prev.latest_offsets,
            offsets_behind_latest=prev.offsets_behind_latest,
            # the declared counts only: a key an older or newer job added is not carried on
            totals=ProgressTotals(**{name: getattr(prev.totals, name) for name in ProgressTotals.model_fields}),
        )

    @property
    def document(self) -> dict[str, Any]:
        """The document as written (JSON keys)."""
        with self._lock:
            return self._doc.model_dump(mode="json")

    def _write(self) -> None:
        self._doc.updated_at = self._clock()
        try:
            # Status, not data: no fsync per batch (the batch files themselves are fsynced).
            self._doc.write(self.path, durable=False)
        except OSError:
            log.exception("cannot write progress", extra={"path": str(self.path)})

    def _set_state(self, state: ProgressState, error: str | None = None) -> None:
        with self._lock:
            if self._doc.state == "failed" and state == "stopped":
                return  # the failure is the news
            self._doc.state = state
            if error is not None:
                self._doc.last_error = error
            self._write()

    def starting(self) -> None:
        self._set_state("starting")

    def running(self) -> None:
        with self._lock:
            if self._doc.state != "starting":
                return
            self._doc.state = "running"
            self._write()

    def stopped(self) -> None:
        self._set_state("stopped")

    def failed(self, error: str) -> None:
        self._set_state("failed", error)

    def batch_committed(self, batch_id: int, counts: BatchCounts) -> None:
        """Called by the sink once the batch's files are renamed into place."""
        with self._lock:
            doc = self._doc
            doc.batch_id = batch_id
            doc.num_input_rows = counts.input_rows
            doc.rows_out = counts.rows_out
            doc.rejects = counts.rejects
            doc.events_without_readings = counts.events_without_readings
            if batch_id > self._last_counted:
                totals = doc.totals
                totals.input_rows += counts.input_rows
                totals.rows_out += counts.rows_out
                totals.rejects += counts.rejects
                totals.events_without_readings += counts.events_without_readings
                totals.batches += 1
                self._last_counted = batch_id
            else:
                log.info("batch re-run after a restart: not counted again", extra={"batch_id": batch_id})
            self._write()

    def batch_progress(
        self,
        *,
        batch_id: int,
        num_input_rows: int,
        input_rows_per_second: float | None,
        processed_rows_per_second: float | None,
        duration_ms: int | None,
        end_offsets: dict[str, int],
        latest_offsets: dict[str, int],
    ) -> None:
        """Called by the listener when a batch (or a no-data trigger) has finished."""
        with self._lock:
            doc = self._doc
            if doc.batch_id == batch_id:  # a batch that ran (not a no-data trigger)
                doc.input_rows_per_second = _finite(input_rows_per_second)
                doc.processed_rows_per_second = _finite(processed_rows_per_second)
                doc.batch_duration_ms = duration_ms
            if end_offsets:
                doc.end_offsets = end_offsets
            if latest_offsets:
                doc.latest_offsets = latest_offsets
            doc.offsets_behind_latest = offsets_behind(doc.end_offsets, doc.latest_offsets)
            if doc.state == "starting":
                doc.state = "running"
            self._write()

    def touch(self) -> None:
        with self._lock:
            self._write()


def _finite(x: float | None) -> float:
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return 0.0
    return float(x)


class ProgressListener(StreamingQueryListener):
    """Feeds the tracker from the query's events. A listener hears every query of the session, so
    it only follows the query named `query_name`."""

    def __init__(self, tracker: ProgressTracker, query_name: str) -> None:
        self.tracker = tracker
        self.query_name = query_name
        self._query_id: str | None = None

    @property
    def _jlistener(self) -> Any:
        """What `spark.streams.addListener` registers: pyspark's bridge, except for progress events
        (one a micro-batch), handed over as the progress's JSON (`on_progress`)."""
        if not hasattr(self, "_jlistenerobj"):
            jvm = SparkContext._jvm
            assert jvm is not None, "a SparkContext runs before a listener is added"
            self._jlistenerobj = jvm.PythonStreamingQueryListenerWrapper(_ProgressAsJson(self))
        return self._jlistenerobj

    def onQueryStarted(self, event: Any) -> None:
        if event.name == self.query_name:
            self._query_id = str(event.id)
            self.tracker.running()
            log.info("query started", extra={"query": self.query_name, "run_id": str(event.runId)})

    def onQueryProgress(self, event: Any) -> None:
        """pyspark's event, only if its bridge is used (a pyspark that no longer asks `_jlistener`)."""
        self.on_progress(orjson.loads(event.progress.json))

    def on_progress(self, p: Mapping[str, Any]) -> None:
        """A finished batch (or no-data trigger): `p` is the StreamingQueryProgress's JSON, parsed."""
        if p.get("name") != self.query_name:
            return
        try:
            source = (p.get("sources") or [None])[0] or {}
            self.tracker.batch_progress(
                batch_id=p["batchId"],
                num_input_rows=p.get("numInputRows", 0),
                input_rows_per_second=p.get("inputRowsPerSecond"),
                processed_rows_per_second=p.get("processedRowsPerSecond"),
                duration_ms=(p.get("durationMs") or {}).get("triggerExecution"),
                end_offsets=flatten_offsets(source.get("endOffset")),
                latest_offsets=flatten_offsets(source.get("latestOffset")),
            )
        except Exception:  # a listener must never break the query
            log.exception("cannot record progress", extra={"batch_id": p.get("batchId")})

    def onQueryIdle(self, event: Any) -> None:
        if str(event.id) == self._query_id:
            self.tracker.touch()

    def onQueryTerminated(self, event: Any) -> None:
        if str(event.id) != self._query_id:
            return
        if event.exception:
            self.tracker.failed(event.exception)
        else:
            self.tracker.stopped()


class _ProgressAsJson(JStreamingQueryListener):
    """pyspark's py4j bridge (it implements the JVM's PythonStreamingQueryListener), with a progress
    event fetched as one JSON string: two py4j calls instead of one a field."""

    def onQueryProgress(self, jevent: Any) -> None:
        self.pylistener.on_progress(orjson.loads(jevent.progress().json()))
