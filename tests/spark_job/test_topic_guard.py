"""The job's topic-identity check (spark_job/topic_guard.py): pure rules and the record beside the
checkpoint, with a stand-in lookup (the real one is tested on the secure broker, tests/security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.checkpoint_topic import FILE_NAME, CheckpointTopic, read_checkpoint_topic
from spark_job.topic_guard import TopicChanged, TopicGuard, decide

OLD = CheckpointTopic(topic="t", topic_id="old-id", recorded_at=1.0)


def test_decide() -> None:
    assert decide(None, None, True) == "unknown"
    assert decide(OLD, None, True) == "unknown"  # the broker could not be asked: ask again later
    assert decide(None, "id", False) == "record"  # a new lineage
    assert decide(None, "id", True) == "record"  # a checkpoint older than the record: adopted
    assert decide(OLD, "old-id", True) == "same"
    assert decide(OLD, "new-id", True) == "refuse"
    assert decide(OLD, "new-id", False) == "record"  # no offsets planned yet: nothing can be skipped


def test_guard_records_at_the_lineage_start_and_refuses_another_topic(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    ids: list[str | None] = [None, "id-1", "id-1", "id-2"]
    guard = TopicGuard(checkpoint, "t", lambda: ids.pop(0), lambda: True)
    assert guard() is None and read_checkpoint_topic(checkpoint) is None
    assert guard() == "id-1" and read_checkpoint_topic(checkpoint).topic_id == "id-1"
    assert guard() == "id-1"
    with pytest.raises(TopicChanged) as refused:
        guard()
    line = str(refused.value)
    assert guard.refusal == line and "\n" not in line
    assert "topic 't' was recreated (topic id id-1, now id-2)" in line
    assert str(checkpoint) in line and "`devicestream reset-checkpoint`" in line
    assert read_checkpoint_topic(checkpoint).topic_id == "id-1"  # the record is kept as it was


def test_an_unreadable_record_says_so(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("{")
    with pytest.raises(ValueError, match="is not a topic record"):
        read_checkpoint_topic(tmp_path)
