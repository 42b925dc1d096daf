"""The foreachBatch sink: each micro-batch becomes exactly one committed rows file, its manifest and,
only when the batch has rejects, one rejects file, all named `batch-<lineage>-<12-digit id>` (the
lineage is the checkpoint's: a new checkpoint never reuses a name; contract.csv). Each job run takes
the next value of a counter kept outside the checkpoint (spark/lineage.json, `batch_identity.take_lineage_seq`) and
writes it into every manifest (`lineage_seq`): the merger merges batches in that order, since a
lineage name (a restored backup's, or after a clock step) may sort anywhere.

The rows file starts with the Kafka partition and offset of each row's record (BATCH_ROW_COLUMNS);
the manifest (contract.batches.BatchManifest) says which offsets the batch covers per partition
(from Spark's offset log) and the topic's id (from the broker): the merger keys exactly-once on them.

Input: the batch as `transform.screen` returns it: classified when every record is canonical (as
the generator writes events: the usual case), otherwise counted as not canonical. The job applies
`screen` to the streaming DataFrame once, when the query starts: building that plan from Python
takes about half a second of py4j calls, which per micro-batch was a third of a small batch's
cost. For the same reason the Columns applied to each batch (the rows' projections, the counts)
are built once, at the first batch (`transform.RowsColumns`): per batch they cost ~40 ms of py4j
calls and JVM class lookups. A batch that has records `screen` did not classify (the observed
count says so after the rows are written) is classified again with the strict checks
(`transform.classify_prepared`) and written again: only unusual input pays for the strict checks'
code, which Spark otherwise generates anew for every micro-batch. The batch after it starts with
the strict checks (one pass), until a batch turns out canonical.

How a batch is written, in one Spark job in the usual case (no rejects):
- the rows of a small batch (fewer than `single_task_below` records, the usual case at a steady
  rate): one task (`coalesce(1)`) parses the records and Spark's CSV writer streams its rows into
  one part file: one task's fixed cost instead of one per Kafka partition, and nothing collected
  into the driver, so a few huge values (a 1 MB value of empty readings is ~330,000 rows) cost
  the driver no memory. (Until 2026-12-03 a small batch's rows were collected into the driver over
  Arrow, which needed a byte budget checked by a Spark job of its own: a second read of the batch
  from Kafka, with a shuffle, that cost more per micro-batch than the collect saved.)
- the rows of a large batch: Spark's own CSV writer writes one part file per task (per input split of the
  batch: a Kafka partition, or a contiguous offset range of one when SPARK_JOB_MIN_PARTITIONS cuts a big
  partition into several; so parsing and formatting run on every core) into a fresh temporary folder under
  `spark/_tmp/`; the driver joins them into one file (the first part, extended with the others'
  rows by copy_file_range, header lines checked and dropped); the batch's counts (input rows,
  rows out, rejects, events without readings) are taken in the same pass with
  `DataFrame.observe`, so nothing is cached or counted twice. On a standalone cluster the
  executors write the part files to the shared data folder and the driver joins them there (a
  kernel-side copy): no batch data flows through the driver's Python.
- the rejects: only when the counts say there are some, a second job writes them the same way
  (the batch is read again: rare, and only bad input pays for it); otherwise there is no rejects
  file (576,000 empty files a day at a 150 ms trigger otherwise).
- then the driver commits: fsync, rename (os.replace) the rejects file (never over an existing one:
  a re-run of the same batch in the same lineage has the same records), the manifest, then the rows
  file, whose rename is the commit point.
The files themselves (CSV options, part files, the join and rename): spark_job/batch_files.py; what
the manifest says besides the offsets (lineage_seq, topic id): spark_job/batch_identity.py.

Exactly once: Spark re-runs a batch after a crash with the same id and the same offsets (its
offset log is written before the batch runs), so the re-run renames the same rows over the same
name; whatever else re-sends a record (a new checkpoint replaying the topic) is dropped by the
merger by its Kafka offset. A rename is the only way a name appears in rows/ or rejects/; temp
folders and temp names never match contract.csv.parse_batch_file_name. The sink never reads old batch files (the merger
may delete them). The rejects file is committed before the rows file, and the counts are handed to
the progress tracker after both.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, Observation

from contract.batches import BatchManifest, OffsetRange
from contract.csv import BATCH_ROW_HEADER, REJECT_HEADER, batch_file_name, make_lineage, manifest_file_name
from contract.files import atomic_write_bytes
from spark_job import transform
from spark_job.batch_files import commit_parts, spark_write
from spark_job.batch_identity import offsets_continue, take_lineage_seq, topic_id_stale
from spark_job.checkpoint_reader import OffsetLogError
from spark_job.progress import BatchCounts

log = logging.getLogger(__name__)


class BatchSink:
    """The foreachBatch function (call it with (batch_df, batch_id))."""

    def __init__(
        self,
        rows_dir: Path,
        rejects_dir: Path,
        tmp_dir: Path,
        on_committed: Callable[[int, BatchCounts], None] | None = None,
        *,
        lineage: Callable[[], str],
        ranges: Callable[[int], dict[int, OffsetRange]],
        topic: str,
        topic_id: Callable[[], str | None] = lambda: None,
        durable: bool = True,
        single_task_below: int = 0,
        lineage_counter: Path | None = None,
    ) -> None:
        """`lineage()`: the checkpoint's lineage (asked once, at the first batch: Spark writes the
        checkpoint's metadata when the query starts); `ranges(batch_id)`: the offsets the batch
        covers per partition; `topic_id()`: Kafka's id of `topic`, asked at the first batch and again
        only when `topic_id_stale` says so (one broker round trip, not one per micro-batch);
        `lineage_counter`: spark/lineage.json, whose next seq this run takes at its first batch and
        writes into every manifest (None: no seq, e.g. the bench)."""
        self.rows_dir = rows_dir
        self.rejects_dir = rejects_dir
        self.tmp_dir = tmp_dir
        self.on_committed = on_committed
        self.durable = durable
        self.single_task_below = single_task_below
        self.topic = topic
        self._lineage_of = lineage
        self._lineage: str | None = None
        self._lineage_counter = lineage_counter
        self._lineage_seq: int | None = None
        self._ranges = ranges
        self._topic_id = topic_id
        self._known_topic_id: str | None = None
        self._topic_id_at = 0.0
        self._last_ranges: dict[int, OffsetRange] = {}
        self._busy = threading.Event()
        #: how the last batch's rows were written ("one task" or "per partition", then ", strict"
        #: when it was classified with the strict checks)
        self.last_path = ""
        #: the last batch had records that are not canonical: classify the next with the strict
        #: checks at once (another producer's events would otherwise cost every batch two passes)
        self._strict_next = False

    @property
    def busy(self) -> bool:
        """True while a batch is being written."""
        return self._busy.is_set()

    def prepare(self) -> None:
        """Create the folders and remove what a crash left behind (temp folders and temp names only;
        committed files are never touched)."""
        for d in (self.rows_dir, self.rejects_dir):
            d.mkdir(parents=True, exist_ok=True)
            for leftover in d.glob(".batch-*.tmp-*"):
                leftover.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        self._busy.set()
        try:
            self.write_batch(batch_df, batch_id)
        finally:
            self._busy.clear()

    def write_batch(self, screened: DataFrame, batch_id: int) -> BatchCounts:
        """Write one batch (`screened`: transform.screen's output) and commit its files."""
        started = time.monotonic()
        lineage = self._lineage or self._first_lineage()
        try:
            ranges = self._ranges(batch_id)
        except OffsetLogError as e:  # the merger then keys on the rows' own offsets only
            log.warning("no offset ranges for this batch", extra={"batch_id": batch_id, "error": str(e)})
            ranges = {}
        topic_id = self._current_topic_id(ranges)
        name = batch_file_name(batch_id, lineage)
        columns = self._columns
        small = one_task(ranges, self.single_task_below)
        self.last_path = "one task" if small else "per partition"
        prepared = time.monotonic()
        tmp_folders: list[Path] = []
        try:
            classified, c, not_canonical = screened, {}, 0
            if not self._strict_next:
                counts_cols = (*columns.counts, columns.not_canonical)
                rows_parts, c = self._write_rows(screened, batch_id, small, counts_cols, tmp_folders)
            if self._strict_next or c["notCanonical"]:
                # Records the fast path did not take: the whole batch classified with the strict
                # checks (written again when the first pass found them; the batch is read again).
                # The next batch starts strict too, unless this one was canonical after all.
                seen = Observation(f"canonical-{batch_id}-{uuid.uuid4().hex[:8]}")
                classified = transform.classify_prepared(screened.observe(seen, columns.not_canonical), self._strict)
                rows_parts, c = self._write_rows(classified, batch_id, small, columns.counts, tmp_folders)
                not_canonical = int(metrics(seen)["notCanonical"])
                self._strict_next = not_canonical > 0
                self.last_path += ", strict"
            written = time.monotonic()
            counts = BatchCounts(
                input_rows=int(c["inputRows"]),
                rows_out=int(c["rowsOut"]),
                rejects=int(c["rejects"]),
                events_without_readings=int(c["eventsWithoutReadings"]),
            )
            if counts.rejects:
                self._commit_rejects(classified, batch_id, self.rejects_dir / name)
            manifest = BatchManifest(
                lineage=lineage,
                batch_id=batch_id,
                lineage_seq=self._lineage_seq,
                topic=self.topic,
                topic_id=topic_id,
                offsets=ranges,
                input_records=counts.input_rows,
                rows=counts.rows_out,
                rejects=counts.rejects,
                written_at=time.time(),
            )
            atomic_write_bytes(self.rows_dir / manifest_file_name(name), manifest.to_bytes(), durable=self.durable)
            commit_parts(rows_parts, BATCH_ROW_HEADER, self.rows_dir / name, durable=self.durable)
        finally:
            for tmp in tmp_folders:
                shutil.rmtree(tmp, ignore_errors=True)
        done = time.monotonic()
        log.info(
            "batch committed",
            extra={
                "batch_id": batch_id,
                "lineage": lineage,
                "offsets": {p: [r.start, r.end] for p, r in ranges.items()},
                "input_rows": counts.input_rows,
                "rows_out": counts.rows_out,
                "rejects": counts.rejects,
                "events_without_readings": counts.events_without_readings,
                "path": self.last_path,
                "not_canonical": not_canonical,
                "duration_ms": round((done - started) * 1000),
                # where the time went: before the Spark job, the job (rows file and counts), the commit
                "prepare_ms": round((prepared - started) * 1000),
                "spark_ms": round((written - prepared) * 1000),
                "commit_ms": round((done - written) * 1000),
            },
        )
        if self.on_committed is not None:
            self.on_committed(batch_id, counts)
        return counts

    def _current_topic_id(self, ranges: dict[int, OffsetRange]) -> str | None:
        now = time.monotonic()
        if topic_id_stale(self._known_topic_id, now - self._topic_id_at, self._last_ranges, ranges):
            asked = self._topic_id()
            if asked is not None:
                self._known_topic_id, self._topic_id_at = asked, now
            elif not offsets_continue(self._last_ranges, ranges):
                self._known_topic_id = None  # the offsets jumped and the broker cannot say: unknown
            # else: a failed ask (a slow broker) while the offsets continue keeps the known id; the
            # next batch asks again (TopicIdentity's backoff keeps that cheap)
        self._last_ranges = ranges
        return self._known_topic_id

    def _first_lineage(self) -> str:
        try:
            self._lineage = self._lineage_of()
        except OffsetLogError as e:  # (a batch run outside a streaming query, e.g. the bench)
            self._lineage = make_lineage(time.time_ns() // 1_000_000, uuid.uuid4().hex)
            log.warning("no checkpoint lineage: using a new one", extra={"lineage": self._lineage, "error": str(e)})
        if self._lineage_counter is not None:
            self._lineage_seq = take_lineage_seq(self._lineage_counter, self._lineage, durable=self.durable)
        log.info("checkpoint lineage", extra={"lineage": self._lineage, "lineage_seq": self._lineage_seq})
        return self._lineage

    def _write_rows(
        self, classified: DataFrame, batch_id: int, small: bool, counts: tuple[Column, ...], tmp_folders: list[Path]
    ) -> tuple[list[Path], dict[str, Any]]:
        """Write the rows of `classified` (one task when `small`) as part files in a new temp folder
        (added to `tmp_folders`), with `counts` observed in the same pass: (parts, the counts)."""
        observation = Observation(f"batch-{batch_id}-{uuid.uuid4().hex[:8]}")
        observed = classified.observe(observation, *counts)
        tmp = self._tmp_folder("rows", batch_id)
        tmp_folders.append(tmp)
        parts = spark_write(
            transform.rows(observed.coalesce(1) if small else observed, self._columns), BATCH_ROW_HEADER, tmp
        )
        return parts, metrics(observation)

    @cached_property
    def _columns(self) -> transform.RowsColumns:
        """The Columns applied to every batch, built at the first (a SparkContext runs by then)."""
        return transform.RowsColumns.build()

    @cached_property
    def _strict(self) -> transform.Stages:
        """The strict checks' projections, built at the first batch that needs them."""
        return transform.strict_stages()

    def _tmp_folder(self, kind: str, batch_id: int) -> Path:
        return self.tmp_dir / f"{kind}-{batch_file_name(batch_id).removesuffix('.csv')}-{uuid.uuid4().hex[:8]}"

    def _commit_rejects(self, classified: DataFrame, batch_id: int, final: Path) -> None:
        if final.exists():  # a re-run of this batch of this lineage: the same records, already there
            log.info("rejects file already committed", extra={"batch_id": batch_id, "path": str(final)})
            return
        tmp = self._tmp_folder("rejects", batch_id)
        try:
            parts = spark_write(transform.rejects(classified, batch_id), REJECT_HEADER, tmp)
            commit_parts(parts, REJECT_HEADER, final, durable=self.durable)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def metrics(observation: Observation) -> dict[str, Any]:
    """The observed metrics (waiting for them), as Observation.get gives them, without its cost:
    Observation.get iterates the metrics' Java map, whose end py4j learns from a
    NoSuchElementException, which pyspark's error conversion then checks against 13 exception
    classes, each check a py4j lookup of py4j.reflection.TypeUtil that first misses in every jar of
    the class path (~140 class-loader misses a batch, most of the stream thread's py4j time). The
    keys as a Java array and a get per key are plain calls."""
    jo = getattr(observation, "_jo", None)  # pyspark's handle of the JVM Observation
    if jo is None:
        return observation.get
    jmap = jo.getAsJava()
    return {key: jmap.get(key) for key in jmap.keySet().toArray()}


def one_task(ranges: dict[int, OffsetRange], below: int) -> bool:
    """Whether a batch is small enough to run as one task: it covers fewer than `below` records (known
    from its offset ranges; unknown counts as large). A task per Kafka partition pays off for large
    batches; for a few thousand records the tasks' fixed costs are most of the batch's time."""
    if not ranges or any(r.start is None for r in ranges.values()):
        return False
    return sum(r.end - (r.start or 0) for r in ranges.values()) < below
