"""The per-run time series (contract/run_series.py): a lifespan task that takes the /status snapshot
the dashboard polls anyway, about once a second, and appends the figures of the generator's current
run to <data_dir>/gateway/series/<run id>.jsonl, so `devicestream report` can draw the run after it
ended and after a restart.

`sample_of` and `header_of` are pure (a PipelineStatus in, a line out); SeriesRecorder is the thin
shell: it appends, thins a file past `series_max_points`, keeps recording `series_tail_s` after the
run ended and until the pipeline has drained it (at most `series_max_drain_s`), and deletes series
whose run's ledger is gone, keeping at most `series_max_runs` files."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contract.api import Run
from contract.files import atomic_write_bytes
from contract.ledger import LedgerError
from contract.pipeline_status import PipelineStatus
from contract.run_series import SeriesHeader, SeriesSample, dump_line, read_series, series_path, thin
from services.gateway.settings import GatewaySettings
from services.gateway.status_snapshot import StatusService

log = logging.getLogger(__name__)


def _run_of(doc: PipelineStatus) -> Run | None:
    g = doc.components.generator
    return g.run if g.reachable else None


def _sent(model: BaseModel, name: str) -> Any:
    """A field of a document as its service sent it (None when it did not send it: not its default)."""
    return getattr(model, name) if name in model.model_fields_set else None


def sample_of(doc: PipelineStatus, *, before_run: bool = False) -> SeriesSample:
    """Pure: the figures of one /status snapshot."""
    g, m = doc.components.generator, doc.components.merger
    spark = doc.components.spark
    s = spark.progress() if spark.model_extra else None
    totals = s.totals if s is not None and "totals" in s.model_fields_set else None
    fresh = m.freshness if "freshness" in m.model_fields_set else None
    run = _run_of(doc)
    return SeriesSample(
        t=doc.checked_at,
        before_run=before_run,
        run_state=None if run is None else run.state,
        rate_requested=_sent(g, "rate_requested"),
        rate_achieved=_sent(g, "rate_1s"),
        sent=_sent(g, "sent"),
        acknowledged=_sent(g, "acknowledged"),
        offset_first=g.offset_first,
        offset_last=g.offset_last,
        events_in_kafka=doc.components.kafka.total_events,
        spark_batch_id=None if s is None else s.batch_id,
        spark_batch_duration_ms=None if s is None else s.batch_duration_ms,
        spark_processed_rows_per_s=None if s is None else _sent(s, "processed_rows_per_second"),
        spark_input_rows_total=None if totals is None else _sent(totals, "input_rows"),
        spark_rows_out_total=None if totals is None else _sent(totals, "rows_out"),
        spark_rejects_total=None if totals is None else _sent(totals, "rejects"),
        lag_offsets=doc.lag.kafka_offsets_behind,
        spark_offsets_behind_latest=None if s is None else s.offsets_behind_latest,
        rows_merged=_sent(m, "rows_merged"),
        freshness_last_s=None if fresh is None else fresh.last_s,
        freshness_p50_s=None if fresh is None else fresh.p50_s,
        freshness_p99_s=None if fresh is None else fresh.p99_s,
        overall=doc.overall,
    )


def header_of(doc: PipelineStatus, settings: GatewaySettings, interval_s: float) -> SeriesHeader:
    """Pure: the run and the pipeline as the gateway sees them when the run appears."""
    run = _run_of(doc)
    assert run is not None  # (called when the run appears)
    k = doc.components.kafka
    return SeriesHeader(
        run_id=run.id,
        started_at=run.started_at,
        params=run.params,
        topic=settings.topic,
        kafka_bootstrap=k.bootstrap,
        kafka_brokers=k.brokers,
        kafka_partitions=k.partitions,
        kafka_security_protocol=settings.kafka_security_protocol,
        generator_url=settings.generator_base(),
        merger_url=settings.merger_base(),
        sample_interval_s=interval_s,
    )


class SeriesRecorder:
    def __init__(self, settings: GatewaySettings, status: StatusService) -> None:
        self.settings = settings
        self.status = status
        self.dir = settings.layout.run_series
        self.runs_dir = settings.layout.generator_runs
        self._current: str | None = None
        self._lines = 0
        self._previous: PipelineStatus | None = None
        self._finished: str | None = None

    async def run_forever(self) -> None:
        interval = self.settings.series_interval_s
        while True:
            started = time.monotonic()
            try:
                doc = await self.status.snapshot()
                await asyncio.to_thread(self.observe, doc)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad round (disk full, odd document) must not end the recording
                log.warning("run series: sample failed", exc_info=True, extra={"dir": str(self.dir)})
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))

    def observe(self, doc: PipelineStatus) -> None:
        """Append this snapshot to its run's series (blocking file I/O: called in a thread).

        After the run ended: every snapshot for `series_tail_s`, then on until the first drained one
        (every stage agrees; recorded, so the series ends with the drained figures), at most
        `series_max_drain_s`. A run seen only after that (a gateway restarted later) is not recorded."""
        previous, self._previous = self._previous, doc
        run = _run_of(doc)
        if run is None or run.id == self._finished:
            return
        run_id = run.id
        try:
            path = series_path(self.dir, run_id)
        except LedgerError:
            return
        ended = run.ended_at
        since_end = None if ended is None else doc.checked_at - ended
        tail, longest = self.settings.series_tail_s, max(self.settings.series_tail_s, self.settings.series_max_drain_s)
        if since_end is not None and (since_end > longest or (since_end > tail and run_id != self._current)):
            self._finished = run_id
            return
        if run_id != self._current:
            self._start(path, doc, previous)
        self._append(path, [sample_of(doc)])
        if since_end is not None and since_end > tail and doc.accounting.drained:
            self._finished = run_id
            log.info("run series: complete", extra={"run": run_id, "path": str(path)})

    def _start(self, path: Path, doc: PipelineStatus, previous: PipelineStatus | None) -> None:
        self._current = run_id = path.stem
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = read_series(path)
        self._lines = len(existing.samples) if existing else 0
        if existing is None or existing.header is None:
            lines = [header_of(doc, self.settings, self.settings.series_interval_s)]
            if previous is not None and getattr(_run_of(previous), "id", None) != run_id:
                lines.append(sample_of(previous, before_run=True))
            atomic_write_bytes(path, b"".join(dump_line(x) for x in lines), durable=False)
            self._lines = len(lines) - 1
            log.info("run series: recording", extra={"run": run_id, "path": str(path)})
        self.prune(keep=path)

    def _append(self, path: Path, samples: list[SeriesSample]) -> None:
        with path.open("ab") as f:
            f.write(b"".join(dump_line(s) for s in samples))
        self._lines += len(samples)
        if self._lines > self.settings.series_max_points:
            series = read_series(path)
            if series is not None and series.header is not None:
                kept = thin(series.samples)
                atomic_write_bytes(path, b"".join(dump_line(x) for x in [series.header, *kept]), durable=False)
                self._lines = len(kept)

    def prune(self, keep: Path | None = None) -> None:
        """Delete series whose ledger is gone (when the ledgers are in this data folder), then the
        oldest beyond `series_max_runs`."""
        try:
            files = sorted(self.dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        if self.runs_dir.is_dir():
            for p in list(files):
                if p != keep and not (self.runs_dir / p.name).exists():
                    p.unlink(missing_ok=True)
                    files.remove(p)
                    log.info("run series: removed with its ledger", extra={"path": str(p)})
        for p in files[: max(0, len(files) - self.settings.series_max_runs)]:
            if p != keep:
                p.unlink(missing_ok=True)
