"""A big batch (committed in row-bounded chunks, services.merger.streamed) follows the rules of the
ordinary commit when something goes wrong: a torn journal tail is settled before its first write,
a state.json that cannot be written keeps its files (and still tells on_commit), a manifest without a
topic id is held, and a quarantined big batch counts its records as merged."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from contract.csv import BatchName
from services.merger import commit as commit_module
from services.merger.errors import CommitWriteError
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from tests.merger.batches import LINEAGE_A, LINEAGE_B, write_keyed_batch

BUDGET = 4096  # a 300-record batch is far over it: streamed


def _settings(tmp_path: Path) -> MergerSettings:
    return MergerSettings(data_dir=tmp_path, file_budget_bytes=BUDGET)


def _no_space(*_args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_state_json_failure_keeps_the_streamed_batch_and_still_counts_the_commit(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    path = write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 300)})
    commits = []
    engine = MergeEngine(settings, on_commit=commits.append)
    with monkeypatch.context() as m:
        m.setattr(commit_module, "save_state", _no_space)
        with pytest.raises(CommitWriteError) as e:
            engine.run_pass()
    assert e.value.step == "state"
    assert path.exists()  # kept until state.json is written
    assert len(commits) == 1 and engine.state.rows_merged == 300  # the journal has the commit
    engine.run_pass()
    assert not path.exists() and len(commits) == 1 and engine.state.rows_merged == 300


def test_a_quarantined_streamed_batch_counts_its_records_as_merged(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    path = write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 300)})
    path.write_text("eventId,x\n" + "a,b\n" * 3000)  # no Kafka columns: a broken contract
    engine = MergeEngine(settings)
    with monkeypatch.context() as m:
        m.setattr(commit_module, "save_state", _no_space)
        with pytest.raises(CommitWriteError):
            engine.run_pass()
    engine.run_pass()
    assert [q.file for q in engine.state.quarantined] == [path.name]  # once, not again on the retry
    assert engine.state.next_offsets == {0: 300}


def test_a_streamed_batch_without_a_topic_id_is_held_not_merged(tmp_path):
    settings = _settings(tmp_path)
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 50)})
    engine = MergeEngine(settings)
    engine.run_pass()
    held = write_keyed_batch(settings.rows_dir, LINEAGE_B, 1, {0: (0, 300)}, topic_id=None)
    engine.commit_group((BatchName(LINEAGE_B, 1),))  # as if planned before its id went unknown
    assert engine.state.rows_merged == 50 and engine.state.topic_id is not None
    assert held.exists()


def test_a_torn_journal_tail_is_settled_before_a_streamed_batch_writes(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    small = write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (3, 6)})
    journal = str(settings.journal_file.resolve())
    real_write, real_truncate = os.write, os.ftruncate

    def is_journal(fd: int) -> bool:
        return os.path.realpath(f"/proc/self/fd/{fd}") == journal

    def half_write(fd, data):  # a short journal line, then no space
        if is_journal(fd):
            if len(data) > 10:
                return real_write(fd, bytes(data[: len(data) // 2]))
            _no_space()
        return real_write(fd, data)

    def no_cut(fd, size):  # and the journal cannot be cut back: its torn tail stays
        if is_journal(fd):
            raise OSError(errno.EIO, "Input/output error")
        return real_truncate(fd, size)

    with monkeypatch.context() as m:
        m.setattr(commit_module.os, "write", half_write)
        m.setattr(commit_module.os, "ftruncate", no_cut)
        with pytest.raises(CommitWriteError):
            engine.run_pass()
    small.unlink()
    small.with_name(small.name.replace(".csv", ".manifest.json")).unlink(missing_ok=True)
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 2, {0: (3, 300)})  # big: streamed
    engine.run_pass()
    assert settings.merged_csv.stat().st_size == engine.state.committed_size
    assert engine.state.rows_merged == 300
    engine.close()
    MergeEngine(settings).close()  # a restart agrees with what is on disk
