"""`devicestream reset-checkpoint`: start a new lineage of the Spark job, from the topic's earliest
offsets, by moving its checkpoint aside (`spark/checkpoint.before-reset-<UTC time>`, kept, never
deleted). What the job's refusal of a recreated topic (contract/checkpoint_topic.py) tells the
operator to run.

It refuses while the job runs (Spark would go on writing into the moved folder): under a launcher,
unless `devicestream status` shows spark failed (the refusal), in which case the launcher starts
the job again once the checkpoint is gone; without one, while progress.json names a live driver."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from contract.checkpoint_topic import read_checkpoint_topic
from contract.launcher import LauncherState
from contract.layout import DataLayout
from contract.progress import read_progress_or_none
from devicestream.stack_client import running_launcher

#: spark states under a launcher in which the job is not running
NOT_RUNNING = ("pending", "failed", "stopped")


class ResetRefused(RuntimeError):
    """The checkpoint cannot be moved now (the message says why and what to do)."""


def aside_name(checkpoint: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return checkpoint.with_name(f"{checkpoint.name}.before-reset-{stamp}")


def job_running(layout: DataLayout) -> str | None:
    """Why the Spark job counts as running (None: it does not)."""
    state = LauncherState.read(layout.launcher_state)
    launcher = running_launcher(state)
    if state is not None and launcher is not None:
        spark = state.components.get("spark")
        if spark is not None and spark.state not in NOT_RUNNING:
            return (
                f"the Spark job runs under the launcher (pid {launcher.pid}, spark {spark.state}): stop the stack "
                "with `devicestream down`, run this again, then `devicestream up`"
            )
        return None
    doc = read_progress_or_none(layout.spark_progress)
    if doc is not None and doc.state in ("starting", "running") and doc.pid and psutil.pid_exists(doc.pid):
        return f"the Spark job runs (driver pid {doc.pid}, {layout.spark_progress}): stop it first, then run this again"
    return None


def reset_checkpoint(layout: DataLayout, topic: str, now: Callable[[], float] = time.time) -> list[str]:
    """Move the checkpoint aside; the lines to print. Raises ResetRefused while the job runs."""
    checkpoint = layout.spark_checkpoint
    if not checkpoint.exists():
        return [f"no checkpoint at {checkpoint}: the next start already reads {topic!r} from its earliest offsets"]
    if (why := job_running(layout)) is not None:
        raise ResetRefused(f"not reset: {why}")
    try:
        recorded = read_checkpoint_topic(checkpoint)
    except ValueError:
        recorded = None
    aside = aside_name(checkpoint, now())
    os.rename(checkpoint, aside)
    lines = [f"moved the checkpoint aside: {aside} (kept: delete it yourself once no longer needed)"]
    if recorded is not None:
        lines.append(f"it held offsets of topic {recorded.topic!r} with id {recorded.topic_id}")
    lines.append(f"the Spark job's next start begins a new lineage from the earliest offsets of {topic!r}")
    if running_launcher(LauncherState.read(layout.launcher_state)) is not None:
        lines.append("the running launcher starts the Spark job again now (`devicestream status` shows it)")
    return lines
