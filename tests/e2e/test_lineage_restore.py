"""A checkpoint backup restored on a running stack (issue 24): the restored lineage's name and
metadata mtime sort "older" than the lineage that ran in between, yet its new batches hold records no
other batch has. The merger merges them by their offsets (never deleting a batch for being older),
never waits for a batch that will not come, and `devicestream verify` finds every record once."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

RATE = 1000


def _run(stack: Stack, seed: int, seconds: int = 15) -> None:
    stack.start_run(rate=RATE, count=RATE * seconds, seed=seed)
    assert stack.wait_run_ended(timeout=240).state == "completed"


def test_a_restored_checkpoint_backup_merges_its_new_batches(stack: Stack) -> None:
    checkpoint = stack.data / "spark" / "checkpoint"
    backup = stack.data.parent / "checkpoint-backup"
    _run(stack, seed=51)
    stack.verify()
    first = stack.merger_status()
    # The operator's backup, mtimes kept (cp -a), taken while the job runs.
    subprocess.run(["cp", "-a", str(checkpoint), str(backup)], check=True)

    # The checkpoint is reset: a new lineage replays the topic, then new records flow under it.
    old = stack.kill("spark")
    shutil.rmtree(checkpoint)
    stack.wait_restarted("spark", old)
    _run(stack, seed=52)
    stack.verify()
    between = stack.merger_status()
    assert between.lineage != first.lineage

    # The backup is restored while the launcher keeps the job running: the job restarts on it and
    # resumes from the backup's offsets, under the backup's (older-looking) lineage name.
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
    assert st.lineage == first.lineage, "the restored lineage's batches were merged"
    assert st.rows_skipped > between.rows_skipped, "its replay of merged records was dropped row by row"
    assert st.last_error is None and st.quarantined == []
    assert not [e for e in st.events if e.kind in ("topic_recreated", "topic_id_unknown")]
