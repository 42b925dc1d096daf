"""A checkpoint backup restored on a running stack (issue 24): the restored lineage's name and
metadata mtime sort "older" than the lineage that ran in between, yet its new batches hold records no
other batch has. The merger merges them by their offsets (never deleting a batch for being older),
never waits for a batch that will not come, and `devicestream verify` finds every record once.
The steps share one stack and run in file order (each within the per-test timeout)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from contract.merger_status import MergerStatus
from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 1000
#: Merger status after each step, for the next ones.
SEEN: dict[str, MergerStatus] = {}


def _run(stack: Stack, seed: int, seconds: int = 15) -> None:
    stack.start_run(rate=RATE, count=RATE * seconds, seed=seed)
    assert stack.wait_run_ended(timeout=300).state == "completed"


def _checkpoint(stack: Stack) -> tuple:
    return stack.data / "spark" / "checkpoint", stack.data.parent / "checkpoint-backup"


def test_1_backup_the_checkpoint_of_a_running_job(stack: Stack) -> None:
    checkpoint, backup = _checkpoint(stack)
    _run(stack, seed=51)
    stack.verify()
    SEEN["first"] = stack.merger_status()
    # The operator's backup, mtimes kept (cp -a), taken while the job runs.
    subprocess.run(["cp", "-a", str(checkpoint), str(backup)], check=True)


def test_2_reset_the_checkpoint_and_let_new_batches_flow(stack: Stack) -> None:
    checkpoint, _ = _checkpoint(stack)
    old = stack.kill("spark")
    shutil.rmtree(checkpoint)
    stack.wait_restarted("spark", old)
    _run(stack, seed=52)
    stack.verify()
    SEEN["between"] = stack.merger_status()
    assert SEEN["between"].lineage != SEEN["first"].lineage


def test_3_restore_the_backup_while_the_launcher_keeps_the_job_running(stack: Stack) -> None:
    """The job restarts on the restored checkpoint and resumes from the backup's offsets, under the
    backup's (older-looking) lineage name: its replay is dropped row by row, its new records merged."""
    checkpoint, backup = _checkpoint(stack)
    removed_before = _removed_whole(stack)
    old = stack.kill("spark")
    shutil.rmtree(checkpoint)
    subprocess.run(["cp", "-a", str(backup), str(checkpoint)], check=True)
    stack.wait_restarted("spark", old)
    _run(stack, seed=53)
    stack.verify()

    def caught_up() -> bool:
        st = stack.merger_status()
        return st.lag_batches == 0 and st.waiting_for_batch is None

    wait_for(caught_up, 120, "the merger caught up, waiting for nothing", logs=stack.logs("spark", "merger"))
    st = stack.merger_status()
    assert st.lineage == SEEN["first"].lineage, "the restored lineage's batches were merged"
    # Its replay of merged records was dropped: row by row (rows_skipped) where a batch straddles the
    # merged offsets, or whole, unread, where every record of a batch is merged (which of the two
    # depends on how Spark cut the replay into batches).
    assert st.rows_skipped > SEEN["between"].rows_skipped or _removed_whole(stack) > removed_before, (
        "its replay of merged records was dropped"
    )
    assert st.last_error is None and st.quarantined == []
    assert not [e for e in st.events if e.kind in ("topic_recreated", "topic_id_unknown")]


def _removed_whole(stack: Stack) -> int:
    """How many batch files the merger removed unread, every record of them merged already."""
    return sum(
        p.read_text(errors="replace").count("removed the file of an already processed batch")
        for p in stack.logs("merger")
    )
