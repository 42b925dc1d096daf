"""spark/progress.json: the Spark job's latest progress (docs/DESIGN.md lists the fields).

The job writes it (spark_job/progress.py, atomic replace); the gateway's /status, the merger (the
newest batch id), the launcher and the bench read it. The JSON keys are camelCase (Spark's own
names); Python uses snake_case attributes, and the document is always written by alias.

Readers meet files of an older job, of a stand-in, or of a job that has only just started: every
field has a default, unknown keys are kept, so a partial document still parses. A document that
does not parse (not an object, a wrong type) is "unreadable" to every reader (`read_progress`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from contract.files import atomic_write_bytes
from contract.validation import first_problem

ProgressState = Literal["starting", "running", "stopped", "failed"]

_CAMEL = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
    allow_inf_nan=False,
)


class ProgressTotals(BaseModel):
    """Counts accumulated across restarts (each batch id counted once)."""

    model_config = ConfigDict(**_CAMEL, extra="allow")

    input_rows: int = Field(default=0, ge=0)
    rows_out: int = Field(default=0, ge=0)
    rejects: int = Field(default=0, ge=0)
    events_without_readings: int = Field(default=0, ge=0)
    batches: int = Field(default=0, ge=0)


class SparkProgress(BaseModel):
    """The whole document. `None` state, pid or updatedAt only in a partial file."""

    model_config = ConfigDict(**_CAMEL, extra="allow")

    state: ProgressState | None = None
    started_at: float | None = Field(default=None, description="Epoch seconds the job (this run) started.")
    updated_at: float | None = Field(default=None, description="Epoch seconds of the last write.")
    pid: int | None = Field(default=None, description="The Python driver's pid.")
    batch_id: int | None = Field(default=None, description="The last committed batch of the checkpoint.")
    num_input_rows: int = 0
    rows_out: int = 0
    rejects: int = 0
    events_without_readings: int = 0
    input_rows_per_second: float = 0.0
    processed_rows_per_second: float = 0.0
    batch_duration_ms: int | None = None
    end_offsets: dict[str, int] = Field(default_factory=dict, description="{partition: next offset} read.")
    latest_offsets: dict[str, int] = Field(default_factory=dict, description="{partition: Kafka's end offset}.")
    offsets_behind_latest: int | None = None
    last_error: str | None = None
    totals: ProgressTotals = Field(default_factory=ProgressTotals)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    def write(self, path: Path, *, durable: bool = False) -> None:
        """Replace `path` atomically (status, not data: no fsync by default)."""
        atomic_write_bytes(path, self.to_bytes(), durable=durable)

    def partition_offsets(self, which: Literal["end", "latest"] = "end") -> dict[int, int]:
        """end_offsets or latest_offsets keyed by partition number (the JSON keys are strings);
        keys that are not numbers are skipped."""
        raw = self.end_offsets if which == "end" else self.latest_offsets
        out: dict[int, int] = {}
        for p, o in raw.items():
            try:
                out[int(p)] = o
            except ValueError:
                continue
        return out


#: The document's keys, in the order the job writes them (docs/DESIGN.md).
PROGRESS_FIELDS: tuple[str, ...] = tuple(f.alias or n for n, f in SparkProgress.model_fields.items())
TOTAL_FIELDS: tuple[str, ...] = tuple(f.alias or n for n, f in ProgressTotals.model_fields.items())


class ProgressUnreadable(ValueError):
    """progress.json exists but is not a progress document (not JSON, not an object, wrong types)."""


def parse_progress(raw: bytes) -> SparkProgress:
    try:
        return SparkProgress.model_validate_json(raw)
    except ValidationError as e:
        raise ProgressUnreadable(f"not a progress document: {first_problem(e)}") from None


def read_progress(path: Path) -> SparkProgress | None:
    """The document at `path`, None when there is no file yet. Raises OSError when it cannot be
    read and ProgressUnreadable when it does not parse."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_progress(raw)


def read_progress_or_none(path: Path) -> SparkProgress | None:
    """For readers to whom an unreadable document is no document (the merger, the launcher)."""
    try:
        return read_progress(path)
    except (OSError, ProgressUnreadable):
        return None
