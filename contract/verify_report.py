"""What `devicestream verify --json` prints (VerifyReport) and `verify --run <id> --json`
(RunReport): written by devicestream/verify.py and run_check.py, read by the tests and the bench.

Counts are non-negative; `ok` is derived (no problem count above zero) and written with the
document, so a reader that only wants the verdict reads one key."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, Field, computed_field

#: verify --run's problem counts, in the order they are reported.
RUN_PROBLEMS: tuple[str, ...] = (
    "ledger_incomplete",
    "ledger_counts_disagree",
    "invalid_not_rejected",
    "invalid_wrong_reason",
    "timed_not_merged",
    "timed_wrong_event_time",
    "resent_wrong_count",
)


class OffsetRange(BaseModel):
    """Records of one partition, offsets [start, end): e.g. the records a checkpoint skipped."""

    topic: str
    partition: int
    start: int
    end: int

    def describe(self) -> str:
        return f"topic {self.topic!r} partition {self.partition} offsets [{self.start}, {self.end})"


class _Report(BaseModel):
    def to_json(self) -> str:
        """What --json prints (indented; examples as the checks found them)."""
        return orjson.dumps(self.model_dump(), option=orjson.OPT_INDENT_2).decode()


class VerifyReport(_Report):
    """The topic reconciled with merged.csv and the rejects."""

    #: The counts that are problems when above zero (the others describe the data).
    PROBLEMS: ClassVar[tuple[str, ...]] = (
        "rows_missing",
        "rows_duplicated",
        "rows_altered",
        "rows_unexpected",
        "records_unaccounted",
        "invalid_not_rejected",
        "valid_rejected",
        "offsets_reused",
    )

    records: int
    valid_records: int
    invalid_records: int
    records_without_readings: int
    rows_expected: int
    rows_in_merged: int
    rejects_found: int
    rows_missing: int = 0
    rows_duplicated: int = 0
    rows_altered: int = 0
    rows_unexpected: int = 0
    records_unaccounted: int = 0
    invalid_not_rejected: int = 0
    valid_rejected: int = 0
    offsets_reused: int = 0
    rows_before_retention: int = Field(
        default=0,
        description="Merged rows no surviving record explains, below the retention floor: most likely rows "
        "of records retention deleted; counted, not judged.",
    )
    rows_retired: int = Field(
        default=0,
        description="Rows not in merged.csv because the merger's retention removed their segment (MERGER_RETAIN_*): "
        "their records lie within a retired segment's offsets; counted, not missing.",
    )
    partitions_truncated: int = Field(
        default=0, description="Partitions whose log start offset is above 0 (retention deleted their oldest records)."
    )
    unaccounted_ranges: list[OffsetRange] = Field(
        default_factory=list,
        description="records_unaccounted by name: runs of consecutive offsets per partition (the first 20), such "
        "as the records below the old offsets that a checkpoint resumed on a recreated topic never read.",
    )
    examples: dict[str, list[Any]] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(getattr(self, k) == 0 for k in self.PROBLEMS)


class RunReport(_Report):
    """One run's ledger checked against the output."""

    run_id: str
    faults: dict[str, int]
    problems: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(RUN_PROBLEMS, 0))
    examples: dict[str, list[Any]] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not any(self.problems.values())
