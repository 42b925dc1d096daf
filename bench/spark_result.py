"""The document bench/spark_plain.py and bench/spark_batch.py print (one `BENCH_RESULT <json>` line on
stdout) and bench/stage_spark.py reads back: one model, built by the scripts, parsed by the stage.

Method (both scripts): one JVM (spark-submit), the DataFrame planned once, one warm-up pass (class
loading, codegen, JIT), then `passes` timed passes over the same records; the figure is the median."""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict, Field

RESULT_PREFIX = "BENCH_RESULT "


class SparkPass(BaseModel):
    model_config = ConfigDict(frozen=True)

    seconds: float = Field(gt=0, description="from the read of the topic to the written (committed) output")
    input_rows: int = Field(ge=0, description="Kafka records read")
    rows_out: int | None = Field(default=None, ge=0, description="CSV rows written, when the script knows it")
    bytes_out: int | None = Field(default=None, ge=0, description="bytes written, when the script knows it")
    cpu_seconds: float | None = Field(
        default=None, ge=0, description="CPU time of the JVM (with the Python driver) during the pass, user + system"
    )

    @property
    def events_per_s(self) -> float:
        return self.input_rows / self.seconds


class SparkRunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    script: str
    tasks: int = Field(ge=1, description="Spark tasks (input partitions) of one pass")
    warmup: SparkPass
    passes: list[SparkPass] = Field(min_length=1, description="the timed passes, after the warm-up")

    @property
    def input_rows(self) -> int:
        return self.passes[-1].input_rows

    @property
    def cpu_rates(self) -> list[float]:
        """Records per CPU second of each timed pass (the passes that know their CPU time)."""
        return [p.input_rows / p.cpu_seconds for p in self.passes if p.cpu_seconds]

    @property
    def rates(self) -> list[float]:
        return [p.events_per_s for p in self.passes]

    @property
    def median_events_per_s(self) -> float:
        return statistics.median(self.rates)

    def line(self) -> str:
        return RESULT_PREFIX + self.model_dump_json()

    @classmethod
    def from_stdout(cls, stdout: str) -> SparkRunResult | None:
        """The result line of a script's stdout, or None when there is none (the script failed)."""
        return next(iter(cls.all_from_stdout(stdout)), None)

    @classmethod
    def all_from_stdout(cls, stdout: str) -> list[SparkRunResult]:
        """Every result line of a script's stdout (bench/spark_keys.py prints one per topic)."""
        return [
            cls.model_validate_json(ln.removeprefix(RESULT_PREFIX))
            for ln in stdout.splitlines()
            if ln.startswith(RESULT_PREFIX)
        ]
