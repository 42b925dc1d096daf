"""`devicestream reset-checkpoint` on a data folder: the checkpoint is moved aside (kept), never while
the job runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from contract.checkpoint_topic import CheckpointTopic
from contract.layout import DataLayout
from contract.progress import SparkProgress
from devicestream.cli import main


def test_moves_the_checkpoint_aside_and_refuses_while_the_job_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEVICESTREAM_DATA_DIR", str(tmp_path))
    layout = DataLayout(tmp_path)
    checkpoint = layout.spark_checkpoint
    assert main(["reset-checkpoint"]) == 0
    assert "no checkpoint at" in capsys.readouterr().out

    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "offsets" / "0").write_text("v1")
    CheckpointTopic(topic="device-events", topic_id="abc", recorded_at=time.time()).write(checkpoint)
    # a live driver (this process stands in for it)
    SparkProgress(state="running", pid=os.getpid(), updated_at=time.time()).write(layout.spark_progress)
    assert main(["reset-checkpoint"]) == 1
    err = capsys.readouterr().err
    assert "not reset: the Spark job runs (driver pid" in err and "stop it first" in err
    assert checkpoint.is_dir()

    SparkProgress(state="failed", pid=os.getpid(), last_error="x").write(layout.spark_progress)
    assert main(["reset-checkpoint"]) == 0
    out = capsys.readouterr().out
    assert not checkpoint.exists()
    (aside,) = [p for p in layout.spark_dir.iterdir() if p.name.startswith("checkpoint.before-reset-")]
    assert (aside / "offsets" / "0").read_text() == "v1"  # kept whole
    assert str(aside) in out and "topic 'device-events' with id abc" in out and "earliest offsets" in out
