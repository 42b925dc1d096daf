"""A generator run's ledger: what it injected where, the ground truth `devicestream verify --run`
checks the pipeline against.

<data_dir>/generator/runs/<run id>.jsonl, one JSON document per line:
  1. a `run` header (id, topic, seed, parameters, the run's first eventOffset),
  2. one `fault` line per injected record, written once Kafka acknowledged it (so it carries the
     record's partition and Kafka offset),
  3. an `end` line with the counts per kind and the run's last eventOffset (a ledger without it is
     incomplete).

A run's records are the ones whose eventOffset lies in [first_event_offset, last_event_offset]: the
generator hands each eventOffset out once, to one run, so two runs of the same seed (same eventIds)
never share one. merged.csv carries no Kafka coordinates; its rows are a run's by this range.

Written by the generator (services/generator/ledger.py), read by devicestream/run_check.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contract.api import RunParams
from contract.reasons import Reason

FaultKind = Literal["invalid", "late", "skewed", "resend"]
FAULT_KINDS: Final[tuple[str, ...]] = ("invalid", "late", "skewed", "resend")

#: The reason the Spark job gives (the rejects' `reason` column) for each kind of malformed record
#: the generator makes (services/generator/events.py INVALID_KINDS). A kind that drops several
#: required fields is rejected for the first one missing, in the order eventId, eventOffset, eventTime.
EXPECTED_REASONS: Final[dict[str, str]] = {
    "not_utf8": Reason.NOT_UTF8,
    "not_json": Reason.NOT_JSON,
    "not_object": Reason.NOT_OBJECT,
    "missing_event_id": Reason.missing("eventId"),
    "missing_event_offset": Reason.missing("eventOffset"),
    "missing_event_time": Reason.missing("eventOffset"),
    "wrong_types": Reason.wrong_type("eventId", "string"),
    "empty": Reason.EMPTY,
}


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerRun(_Line):
    type: Literal["run"] = "run"
    run_id: str
    topic: str
    started_at: float
    seed: int
    first_index: int = 0
    #: what the start asked for (its rate as it was sent)
    params: RunParams
    #: the first eventOffset the run could hand out (None: a ledger from before ranges were written)
    first_event_offset: int | None = None


class InjectedFault(_Line):
    """A record the generator injected, as it knows it when it makes it (services/generator/faults.py);
    its ledger line (`LedgerFault`) adds where Kafka wrote it."""

    type: Literal["fault"] = "fault"
    kind: FaultKind
    #: index of the record in the run (0-based, counting every record made, faults included)
    index: int
    event_offset: int | None = None
    event_id: str | None = None
    #: the eventTime the record carries (late: in the past; skewed: the device's clock)
    event_time: str | None = None
    readings: int | None = None
    invalid_kind: str | None = None
    expected_reason: str | None = None
    lateness_s: float | None = None
    skew_s: float | None = None
    device_id: str | None = None
    #: resend: the eventOffset of the first record with this content (None when that record was made
    #: before a restart, in the run this one continues: first_index)
    original_event_offset: int | None = None

    def at(self, partition: int, offset: int) -> LedgerFault:
        """Its ledger line, once Kafka wrote it at `offset` of `partition`."""
        return LedgerFault(partition=partition, offset=offset, **self.model_dump(exclude={"type"}))


class LedgerFault(InjectedFault):
    partition: int
    offset: int


class LedgerEnd(_Line):
    type: Literal["end"] = "end"
    state: str
    records: int
    faults: dict[str, int] = Field(default_factory=dict)
    #: the last eventOffset the run handed out (None: it made no valid event)
    last_event_offset: int | None = None


LedgerLine = Annotated[LedgerRun | LedgerFault | LedgerEnd, Field(discriminator="type")]
LINE: Final = TypeAdapter(LedgerLine)


class Ledger(BaseModel):
    run: LedgerRun
    faults: list[LedgerFault]
    end: LedgerEnd | None

    def event_offsets(self) -> tuple[int, int | None] | None:
        """The run's eventOffsets as (first, last), inclusive; last None while the ledger is
        incomplete (open-ended); None when the ledger does not say (written before ranges were)."""
        first = self.run.first_event_offset
        if first is None:
            return None
        if self.end is None:
            return first, None
        return first, first - 1 if self.end.last_event_offset is None else self.end.last_event_offset


class LedgerError(ValueError):
    """The ledger is missing or not a ledger; the message says which line and why."""


def ledger_path(runs_dir: Path, run_id: str) -> Path:
    if not run_id or any(c not in "0123456789abcdefABCDEF-_" for c in run_id):
        raise LedgerError(f"not a run id: {run_id!r}")
    return runs_dir / f"{run_id}.jsonl"


def dump_line(line: LedgerRun | LedgerFault | LedgerEnd) -> bytes:
    return orjson.dumps(line.model_dump(exclude_none=True)) + b"\n"


def read_ledger(path: Path) -> Ledger:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise LedgerError(f"no ledger at {path}") from None
    run, end, faults = None, None, []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = LINE.validate_json(raw)
        except ValueError as e:
            raise LedgerError(f"{path}:{n}: not a ledger line: {e}") from e
        if isinstance(line, LedgerRun):
            if run is not None or n != 1:
                raise LedgerError(f"{path}:{n}: the run header must be the first line, once")
            run = line
        elif isinstance(line, LedgerEnd):
            end = line
        else:
            faults.append(line)
    if run is None:
        raise LedgerError(f"{path}: no run header")
    return Ledger(run=run, faults=faults, end=end)
