"""What a batch covers, read from checkpoint files laid out as Spark writes them (no Spark needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contract.batches import OffsetRange
from contract.csv import parse_batch_name
from spark_job.checkpoint_reader import OffsetLogError, batch_ranges, checkpoint_lineage

META = '{"batchWatermarkMs":0,"batchTimestampMs":1764390000000,"conf":{"spark.sql.shuffle.partitions":"2"}}'


def write_offsets(checkpoint: Path, batch_id: int, offsets: str) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch_id)).write_text(f"v1\n{META}\n{offsets}")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    cp = tmp_path / "checkpoint"
    (cp / "sources" / "0").mkdir(parents=True)
    # The Kafka source's initial offsets: a 0 byte (Spark 2.1 compatibility), the version, the JSON.
    (cp / "sources" / "0" / "0").write_bytes(b'\x00v1\n{"t":{"1":5,"0":0}}')
    return cp


def test_the_first_batch_starts_at_the_initial_offsets_the_next_ones_at_the_previous_end(checkpoint: Path) -> None:
    write_offsets(checkpoint, 0, '{"t":{"0":10,"1":5}}')
    write_offsets(checkpoint, 1, '{"t":{"0":25,"1":9,"2":3}}')
    assert batch_ranges(checkpoint, 0, "t") == {0: OffsetRange(start=0, end=10), 1: OffsetRange(start=5, end=5)}
    assert batch_ranges(checkpoint, 1, "t") == {
        0: OffsetRange(start=10, end=25),
        1: OffsetRange(start=5, end=9),
        2: OffsetRange(start=None, end=3),  # a partition added later: its start is not known
    }


def test_a_batch_whose_previous_offsets_were_purged_starts_unknown_where_not_in_the_initial_ones(
    checkpoint: Path,
) -> None:
    write_offsets(checkpoint, 300, '{"t":{"0":900}}')
    (checkpoint / "sources" / "0" / "0").unlink()
    assert batch_ranges(checkpoint, 300, "t") == {0: OffsetRange(start=None, end=900)}


def test_missing_offsets_or_topic_are_errors(checkpoint: Path) -> None:
    with pytest.raises(OffsetLogError):
        batch_ranges(checkpoint, 0, "t")
    write_offsets(checkpoint, 0, '{"other":{"0":1}}')
    with pytest.raises(OffsetLogError, match="no offsets for topic 't'"):
        batch_ranges(checkpoint, 0, "t")


def test_the_lineage_is_the_checkpoint_creation_time_and_query_id(checkpoint: Path) -> None:
    (checkpoint / "metadata").write_text('{"id":"1A2B3C4D-5e6f-7a8b-9c0d-112233445566"}')
    os.utime(checkpoint / "metadata", ns=(1764390000123_000_000, 1764390000123_000_000))
    lineage = checkpoint_lineage(checkpoint)
    assert lineage == "1764390000123-1a2b3c4d"
    assert parse_batch_name(f"batch-{lineage}-000000000007.csv").batch_id == 7  # type: ignore[union-attr]
    (checkpoint / "metadata").unlink()
    with pytest.raises(OffsetLogError):
        checkpoint_lineage(checkpoint)
