"""The foreachBatch sink: each micro-batch becomes exactly one committed rows file and one rejects
file, `batch-<12-digit id>.csv` (header + rows; header only when empty).

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
  (the batch is read again: rare, and only bad input pays for it); otherwise a header-only file is
  written directly (contract.files.atomic_write_bytes).
- then the driver commits: fsync, rename (os.replace) the rejects file, then the rows file.
Spark's CSV writer escapes RFC-4180 style (quote '"' doubled), writes null as an empty field.

Exactly once: Spark re-runs a batch after a crash with the same id and the same offsets (its
offset log is written before the batch runs), so the re-run renames the same rows over the same
name. A rename is the only way a name appears in rows/ or rejects/; temp folders and temp names
never match contract.csv.parse_batch_file_name. The sink never reads old batch files (the merger
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

from contract.csv import REJECT_HEADER, ROW_HEADER, batch_file_name
from contract.files import atomic_write_bytes, fsync_dir
from spark_job import transform
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
        durable: bool = True,
    ) -> None:
        self.rows_dir = rows_dir
        self.rejects_dir = rejects_dir
        self.tmp_dir = tmp_dir
        self.on_committed = on_committed
        self.durable = durable
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
        name = batch_file_name(batch_id)
        observation = Observation(f"batch-{batch_id}-{uuid.uuid4().hex[:8]}")
        observed = classified.observe(observation, *transform.count_columns())
        rows_tmp = self._tmp_folder("rows", batch_id)
        try:
            rows_part = self._spark_write(transform.rows(observed), ROW_HEADER, rows_tmp)
            c = observation.get
            counts = BatchCounts(
                input_rows=int(c["inputRows"]),
                rows_out=int(c["rowsOut"]),
                rejects=int(c["rejects"]),
                events_without_readings=int(c["eventsWithoutReadings"]),
            )
            self._commit_rejects(classified, batch_id, counts.rejects, self.rejects_dir / name)
            self._commit(rows_part, ROW_HEADER, self.rows_dir / name)
        finally:
            shutil.rmtree(rows_tmp, ignore_errors=True)
        log.info(
            "batch committed",
            extra={
                "batch_id": batch_id,
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

    def _tmp_folder(self, kind: str, batch_id: int) -> Path:
        return self.tmp_dir / f"{kind}-{batch_file_name(batch_id).removesuffix('.csv')}-{uuid.uuid4().hex[:8]}"

    def _commit_rejects(self, classified: DataFrame, batch_id: int, rejects: int, final: Path) -> None:
        if rejects == 0:
            self._commit(None, REJECT_HEADER, final)  # header only, no Spark job
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
