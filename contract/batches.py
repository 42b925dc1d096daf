"""The manifest of a committed batch: which Kafka records it covers. The Spark job writes it beside
the rows file (batch-<lineage>-<id>.manifest.json) before renaming the rows file into place; the
merger reads it to merge each Kafka record exactly once, whatever batch id or lineage it comes under.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OffsetRange(BaseModel):
    """The Kafka offsets of one partition a batch covers: [start, end). start is None when the job
    could not tell (the first batch of a checkpoint whose initial offsets are not readable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int | None = Field(ge=0)
    end: int = Field(ge=0)


class BatchManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    #: The checkpoint lineage (contract.csv.make_lineage, a name only: it says nothing of age) and
    #: the batch id within it.
    lineage: str
    batch_id: int = Field(ge=0)
    #: The job run that wrote the batch (LineageCounter.seq): only moves forward, so batches sort
    #: in the order they were written by (lineage_seq, offsets). None from a job before the counter.
    lineage_seq: int | None = Field(default=None, ge=0)
    topic: str
    #: Kafka's topic id (a UUID, changes when the topic is deleted and created again); None when the
    #: job could not ask the broker.
    topic_id: str | None
    #: Per partition: the offsets this batch covers (from Spark's offset log).
    offsets: dict[int, OffsetRange]
    #: Kafka records read, data rows written, records rejected.
    input_records: int = Field(ge=0)
    rows: int = Field(ge=0)
    rejects: int = Field(ge=0)
    written_at: float

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> BatchManifest:
        return cls.model_validate_json(raw)


class LineageCounter(BaseModel):
    """spark/lineage.json: the Spark sink's run counter, kept in the data folder outside the
    checkpoint (so restoring a checkpoint backup cannot move it back). Each job run takes the next
    seq when it writes its first batch and writes it into every manifest (BatchManifest.lineage_seq)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    seq: int = Field(ge=0)
    #: The lineage of the run that took `seq`, and when (epoch s): for an operator reading the file.
    lineage: str
    at: float

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LineageCounter:
        return cls.model_validate_json(raw)
