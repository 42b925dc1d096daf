"""A generator run's time series: the figures the dashboard shows, sampled about once a second,
so that a run can be reported on after it ended and after a restart.

<data_dir>/gateway/series/<run id>.jsonl, one JSON document per line:
  1. a `header` (the run, and the pipeline as the gateway saw it when the run began),
  2. `sample` lines, oldest first; the first one may be `before_run` (the last figures seen before
     the run appeared, the baseline for counters such as Spark's totals).

Written by the gateway (services/gateway/series.py), which polls these figures for /status anyway; read by
`devicestream report` (devicestream/report/). Bounded: past `max_points` samples the writer thins the
file to every other sample (`thin`), and it deletes a run's file once the run's ledger is gone.
A torn last line (a crash mid-append) is skipped by the reader."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contract.api import RunParams
from contract.ledger import ledger_path


class _Line(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class SeriesHeader(_Line):
    type: Literal["header"] = "header"
    run_id: str
    started_at: float | None = None
    params: RunParams | None = Field(default=None, description="The run's parameters (/generator/status).")
    topic: str | None = None
    kafka_bootstrap: str | None = None
    kafka_brokers: int | None = None
    kafka_partitions: int | None = None
    kafka_security_protocol: str | None = None
    generator_url: str | None = None
    merger_url: str | None = None
    sample_interval_s: float = 1.0


class SeriesSample(_Line):
    type: Literal["sample"] = "sample"
    t: float = Field(description="Epoch seconds of the /status snapshot.")
    before_run: bool = False
    run_state: str | None = None
    rate_requested: float | None = None
    rate_achieved: float | None = Field(default=None, description="The generator's rate_1s.")
    sent: int | None = None
    acknowledged: int | None = None
    offset_first: int | None = None
    offset_last: int | None = None
    events_in_kafka: int | None = None
    spark_batch_id: int | None = None
    spark_batch_duration_ms: int | None = None
    spark_processed_rows_per_s: float | None = None
    spark_input_rows_total: int | None = None
    spark_rows_out_total: int | None = None
    spark_rejects_total: int | None = None
    lag_offsets: int | None = Field(
        default=None, description="Records in Kafka Spark has not read yet (the gateway's lag.kafka_offsets_behind)."
    )
    spark_offsets_behind_latest: int | None = Field(
        default=None, description="Spark's own offsetsBehindLatest (as of its last batch, so often 0)."
    )
    rows_merged: int | None = None
    freshness_last_s: float | None = None
    freshness_p50_s: float | None = None
    freshness_p99_s: float | None = None
    overall: str | None = None


SeriesLine = Annotated[SeriesHeader | SeriesSample, Field(discriminator="type")]
LINE: Final = TypeAdapter(SeriesLine)


class RunSeries(BaseModel):
    header: SeriesHeader | None
    samples: list[SeriesSample]

    def during_run(self) -> list[SeriesSample]:
        return [s for s in self.samples if not s.before_run]

    def baseline(self) -> SeriesSample | None:
        return next((s for s in self.samples if s.before_run), None)


def series_path(series_dir: Path, run_id: str) -> Path:
    """Checked like a ledger's name (a run id is hex and dashes): raises LedgerError otherwise."""
    return series_dir / ledger_path(series_dir, run_id).name


def dump_line(line: SeriesHeader | SeriesSample) -> bytes:
    return orjson.dumps(line.model_dump(exclude_none=True)) + b"\n"


def parse_series(raw: bytes) -> RunSeries:
    """Pure: the lines of a series file; unreadable lines (a torn last append) are skipped."""
    header, samples = None, []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            doc = LINE.validate_json(line)
        except ValidationError:
            continue
        if isinstance(doc, SeriesHeader):
            header = header or doc
        else:
            samples.append(doc)
    return RunSeries(header=header, samples=samples)


def read_series(path: Path) -> RunSeries | None:
    try:
        return parse_series(path.read_bytes())
    except FileNotFoundError:
        return None


def thin(samples: list[SeriesSample]) -> list[SeriesSample]:
    """Pure: every other sample, keeping the baseline, the first and the last (halves the file)."""
    base = [s for s in samples if s.before_run]
    run = [s for s in samples if not s.before_run]
    if len(run) <= 2:
        return samples
    keep = run[::2]
    if keep[-1] is not run[-1]:
        keep.append(run[-1])
    return base + keep
