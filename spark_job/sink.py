"""The foreachBatch sink: each micro-batch becomes exactly one committed rows file, its manifest and,
only when the batch has rejects, one rejects file, all named `batch-<lineage>-<12-digit id>` (the
lineage is the checkpoint's: a new checkpoint never reuses a name; contract.csv).

The rows file starts with the Kafka partition and offset of each row's record (BATCH_ROW_COLUMNS);
the manifest (contract.batches.BatchManifest) says which offsets the batch covers per partition
(from Spark's offset log) and the topic's id (from the broker): the merger keys exactly-once on them.

Input: the batch as `transform.classify` returns it. The job applies `classify` to the streaming
DataFrame once, when the query starts: building that plan from Python takes about half a second
of py4j calls, which per micro-batch was a third of a small batch's cost.

How a batch is written, in one Spark job in the usual case (no rejects):
- the rows: Spark's own CSV writer (`coalesce(1)`) writes the part file into a fresh temporary
  folder under `spark/_tmp/`; the batch's counts (input rows, rows out, rejects, events without
  readings) are taken in the same pass with `DataFrame.observe`, so nothing is cached or counted
  twice. The JVM formats ~1M lines/s; on a standalone cluster the executor writes the part file to
  the shared data folder and the driver only renames it: no batch data flows through the driver.
- the rejects: only when the counts say there are some, a second job writes them the same way
  (the batch is read again: rare, and only bad input pays for it); otherwise there is no rejects
  file (86,400 empty files a day at a 1 s trigger otherwise).
- then the driver commits: fsync, rename (os.replace) the rejects file (never over an existing one:
  a re-run of the same batch in the same lineage has the same records), the manifest, then the rows
  file, whose rename is the commit point.
Spark's CSV writer escapes RFC-4180 style (quote '"' doubled), writes null as an empty field.

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
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

from pyspark.sql import DataFrame, Observation

from contract.batches import BatchManifest, OffsetRange
from contract.csv import BATCH_ROW_HEADER, REJECT_HEADER, batch_file_name, make_lineage, manifest_file_name
from contract.files import atomic_write_bytes, fsync_dir
from spark_job import transform
from spark_job.offset_log import OffsetLogError
from spark_job.progress import BatchCounts

log = logging.getLogger(__name__)

#: Spark CSV writer options: RFC 4180 quoting ("" inside quoted fields), nulls as empty fields,
#: whitespace kept as is, \n line ends, one header line per file.
CSV_OPTIONS: Final = {
    "header": "true",
    "quote": '"',
    "escape": '"',
    "nullValue": "",
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
    "lineSep": "\n",
    "encoding": "UTF-8",
}


class SinkError(RuntimeError):
    """A batch could not be written as exactly one committed file."""


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
    ) -> None:
        """`lineage()`: the checkpoint's lineage (asked once, at the first batch: Spark writes the
        checkpoint's metadata when the query starts); `ranges(batch_id)`: the offsets the batch
        covers per partition; `topic_id()`: Kafka's id of `topic`, asked for every batch."""
        self.rows_dir = rows_dir
        self.rejects_dir = rejects_dir
        self.tmp_dir = tmp_dir
        self.on_committed = on_committed
        self.durable = durable
        self.topic = topic
        self._lineage_of = lineage
        self._lineage: str | None = None
        self._ranges = ranges
        self._topic_id = topic_id
        self._busy = threading.Event()

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

    def write_batch(self, classified: DataFrame, batch_id: int) -> BatchCounts:
        """Write one batch (`classified`: transform.classify's output) and commit its two files."""
        started = time.monotonic()
        lineage = self._lineage or self._first_lineage()
        try:
            ranges = self._ranges(batch_id)
        except OffsetLogError as e:  # the merger then keys on the rows' own offsets only
            log.warning("no offset ranges for this batch", extra={"batch_id": batch_id, "error": str(e)})
            ranges = {}
        topic_id = self._topic_id()
        name = batch_file_name(batch_id, lineage)
        observation = Observation(f"batch-{batch_id}-{uuid.uuid4().hex[:8]}")
        observed = classified.observe(observation, *transform.count_columns())
        rows_tmp = self._tmp_folder("rows", batch_id)
        try:
            rows_part = self._spark_write(transform.rows(observed), BATCH_ROW_HEADER, rows_tmp)
            c = observation.get
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
                topic=self.topic,
                topic_id=topic_id,
                offsets=ranges,
                input_records=counts.input_rows,
                rows=counts.rows_out,
                rejects=counts.rejects,
                written_at=time.time(),
            )
            atomic_write_bytes(self.rows_dir / manifest_file_name(name), manifest.to_bytes(), durable=self.durable)
            self._commit(rows_part, BATCH_ROW_HEADER, self.rows_dir / name)
        finally:
            shutil.rmtree(rows_tmp, ignore_errors=True)
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
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        if self.on_committed is not None:
            self.on_committed(batch_id, counts)
        return counts

    def _first_lineage(self) -> str:
        try:
            self._lineage = self._lineage_of()
        except OffsetLogError as e:  # (a batch run outside a streaming query, e.g. the bench)
            self._lineage = make_lineage(time.time_ns() // 1_000_000, uuid.uuid4().hex)
            log.warning("no checkpoint lineage: using a new one", extra={"lineage": self._lineage, "error": str(e)})
        log.info("checkpoint lineage", extra={"lineage": self._lineage})
        return self._lineage

    def _tmp_folder(self, kind: str, batch_id: int) -> Path:
        return self.tmp_dir / f"{kind}-{batch_file_name(batch_id).removesuffix('.csv')}-{uuid.uuid4().hex[:8]}"

    def _commit_rejects(self, classified: DataFrame, batch_id: int, final: Path) -> None:
        if final.exists():  # a re-run of this batch of this lineage: the same records, already there
            log.info("rejects file already committed", extra={"batch_id": batch_id, "path": str(final)})
            return
        tmp = self._tmp_folder("rejects", batch_id)
        try:
            part = self._spark_write(transform.rejects(classified, batch_id), REJECT_HEADER, tmp)
            self._commit(part, REJECT_HEADER, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _spark_write(df: DataFrame, header: str, tmp: Path) -> Path | None:
        """Write `df` as one CSV part file in the new folder `tmp`; the part file, or None when Spark
        wrote none (no rows)."""
        df.coalesce(1).write.options(**CSV_OPTIONS).mode("errorifexists").csv(str(tmp))
        parts = sorted(tmp.glob("part-*"))
        if len(parts) > 1:
            raise SinkError(f"expected one part file in {tmp}, found {[p.name for p in parts]}")
        return parts[0] if parts else None

    def _commit(self, part: Path | None, header: str, final: Path) -> None:
        """Give `part` its committed name (a header-only file when there is no part or it is empty)."""
        if part is None or part.stat().st_size == 0:
            atomic_write_bytes(final, f"{header}\n".encode(), durable=self.durable)
            return
        with open(part, "rb") as f:
            first = f.readline().rstrip(b"\r\n").decode()
            if first != header:
                raise SinkError(f"unexpected header in {part}: {first!r} (expected {header!r})")
            if self.durable:
                os.fsync(f.fileno())
        os.replace(part, final)
        if self.durable:
            fsync_dir(final.parent)
