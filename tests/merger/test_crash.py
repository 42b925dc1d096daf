"""SIGKILL the real merger process at random points of a long merge, restart it, and compare the
result byte for byte with an uninterrupted run over the same batch files."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import httpx
import pytest

from services.merger.errors import StateCorruptError
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from services.merger.state import load_state
from tests.documents import merger_status
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, batch_text, write_batch

pytestmark = pytest.mark.integration

N_BATCHES = 160


def batch_files(seed: int) -> dict[int, bytes]:
    """A long run's batch files: mostly rows, some empty ones, a few invalid ones."""
    rnd = random.Random(seed)
    files: dict[int, bytes] = {}
    for b in range(N_BATCHES):
        kind = rnd.random()
        if kind < 0.08:
            files[b] = rnd.choice([b"", HEADER_LINE.encode()])
        elif kind < 0.11:
            files[b] = batch_text(b, 20).replace(",C,", ",C,oops,", 1).encode()
        else:
            files[b] = batch_text(b, rnd.randint(20, 400)).encode()
    return files


def committed(state_file: Path) -> tuple[int, int]:
    """(last_batch_id or -1, committed_size) as recorded on disk."""
    try:
        state = load_state(state_file)
    except StateCorruptError:
        return -1, 0
    if state is None:
        return -1, 0
    return (-1 if state.last_batch_id is None else state.last_batch_id), state.committed_size


def committed_last_batch(state_file: Path) -> int:
    return committed(state_file)[0]


def in_the_middle_of_an_append(state_file: Path, merged: Path, deadline_s: float) -> bool:
    """Poll until merged.csv is longer than its committed length (rows written, state not yet):
    the moment a crash leaves a partial append behind. False when not caught before the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if merged.stat().st_size > committed(state_file)[1] > 0:
                return True
        except (FileNotFoundError, KeyError):
            pass
    return False


def test_sigkill_at_random_points_changes_nothing(tmp_path, merger_runner, rows_dir):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    files = batch_files(seed)

    # The uninterrupted run, in-process, over a copy of the same files.
    ref = MergerSettings(data_dir=tmp_path / "reference")
    for b, data in files.items():
        write_batch(ref.rows_dir, b, data)
    ref_engine = MergeEngine(ref)
    ref_engine.run_pass()
    ref_engine.close()
    reference = ref.merged_csv.read_bytes()
    assert ref_engine.state.last_batch_id == N_BATCHES - 1

    # The first half is there from the start, the second half appears after a few crashes.
    for b in range(N_BATCHES // 2):
        write_batch(rows_dir, b, files[b])
    state_file = merger_runner.data_dir / "merger" / "state.json"
    env = {"MERGER_MAX_GROUP_BATCHES": "1"}  # one commit per batch: many points to be killed at
    targets = sorted(rnd.sample(range(3, N_BATCHES - 3), 5))
    second_half_written = False
    merged_file = merger_runner.data_dir / "merger" / "merged.csv"
    mid_append_kills = 0
    for i, target in enumerate(targets):
        if not second_half_written and (i == 2 or target >= N_BATCHES // 2 - 1):
            for b in range(N_BATCHES // 2, N_BATCHES):
                write_batch(rows_dir, b, files[b])
            second_half_written = True
        proc = merger_runner.process(ready=False, **env).start()
        if i == 0:
            proc.kill()  # while it is still starting
            continue
        wait_for(
            lambda t=target, p=proc: committed_last_batch(state_file) >= t or p.proc.poll() is not None,
            60,
            f"progress past batch {target} (seed {seed})",
            logs=[proc.log_file],
            interval=0.005,
        )
        assert proc.proc.poll() is None, f"merger died on its own (seed {seed})"
        if i % 2 == 1 and in_the_middle_of_an_append(state_file, merged_file, 2.0):
            mid_append_kills += 1
        proc.kill()
        # The job re-runs an already merged batch after a crash: its file comes back, same name.
        last = committed_last_batch(state_file)
        if last >= 0:
            again = rnd.randint(0, last)
            write_batch(rows_dir, again, files[again])

    assert second_half_written
    print(f"seed {seed}: {mid_append_kills} kill(s) in the middle of an append")
    with merger_runner.process(**env) as proc:
        url = merger_runner.url

        wait_for(lambda: merger_status(url).last_batch_id == N_BATCHES - 1, 60, "all batches", logs=[proc.log_file])
        wait_for(lambda: not any(rows_dir.iterdir()), 10, "stale re-runs removed", logs=[proc.log_file])
        st = merger_status(url)
        download = httpx.get(f"{url}/merged.csv", timeout=30).content
        assert proc.stop() == 0

    merged = (merger_runner.data_dir / "merger" / "merged.csv").read_bytes()
    assert merged == reference, f"merged.csv differs from the uninterrupted run (seed {seed})"
    assert download == reference
    ref_state = ref_engine.state
    assert (st.batches_merged, st.rows_merged, st.empty_batches) == (
        ref_state.batches_merged,
        ref_state.rows_merged,
        ref_state.empty_batches,
    )
    assert sorted({q.file for q in st.quarantined}) == sorted(q.file for q in ref_state.quarantined)
    quarantine = merger_runner.data_dir / "merger" / "quarantine"
    assert {p.name for p in quarantine.glob("batch-*.csv")} == {q.file for q in ref_state.quarantined}
    shutil.rmtree(ref.data_dir)
