"""The merge engine on real files in a temp folder (no HTTP, no watcher)."""

import csv
import errno
import os

import polars as pl
import pytest

from contract.csv import batch_file_name
from services.merger import commit as commit_module
from services.merger import readahead as readahead_module
from services.merger.errors import MergeAttemptError
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE
from tests.merger.batches import batch_text, rows, write_batch


@pytest.fixture
def settings(tmp_path):
    return MergerSettings(data_dir=tmp_path)


def expected(*batches: tuple[int, int]) -> bytes:
    return HEADER_LINE + "".join(rows(b, n) for b, n in batches).encode()


def test_merges_in_batch_order_whatever_the_arrival_order(settings):
    for b in (2, 0, 3, 1):
        write_batch(settings.rows_dir, b, batch_text(b, 5))
    engine = MergeEngine(settings)
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 5), (1, 5), (2, 5), (3, 5))
    assert engine.state.last_batch_id == 3 and engine.state.rows_merged == 20 and engine.state.batches_merged == 4
    assert not list(settings.rows_dir.iterdir())  # merged files deleted


def test_a_gap_is_waited_for_never_skipped(settings):
    for b in (0, 2):
        write_batch(settings.rows_dir, b, batch_text(b, 2))
    engine = MergeEngine(settings)
    result = engine.run_pass()
    assert result.plan.waiting_for == 1
    assert engine.state.last_batch_id == 0
    assert settings.merged_csv.read_bytes() == expected((0, 2))
    write_batch(settings.rows_dir, 1, batch_text(1, 2))
    assert engine.run_pass().plan.waiting_for is None
    assert settings.merged_csv.read_bytes() == expected((0, 2), (1, 2), (2, 2))


def test_a_rewritten_batch_is_removed_not_merged_twice(settings):
    write_batch(settings.rows_dir, 0, batch_text(0, 3))
    engine = MergeEngine(settings)
    engine.run_pass()
    write_batch(settings.rows_dir, 0, batch_text(0, 3))  # the job re-ran batch 0 after a crash
    assert engine.run_pass().stale_removed == 1
    assert not (settings.rows_dir / batch_file_name(0)).exists()
    assert settings.merged_csv.read_bytes() == expected((0, 3))


def test_empty_and_invalid_batches_are_recorded_and_the_merge_goes_on(settings):
    write_batch(settings.rows_dir, 0, batch_text(0, 2))
    write_batch(settings.rows_dir, 1, HEADER_LINE)
    write_batch(settings.rows_dir, 2, b"")
    write_batch(settings.rows_dir, 3, "not,a,header\n1,2,3\n")
    write_batch(settings.rows_dir, 4, batch_text(4, 2).replace(",C,", ",C,extra,", 1))
    write_batch(settings.rows_dir, 5, batch_text(5, 2))
    engine = MergeEngine(settings)
    engine.run_pass()
    state = engine.state
    assert settings.merged_csv.read_bytes() == expected((0, 2), (5, 2))
    assert (state.last_batch_id, state.batches_merged, state.empty_batches) == (5, 2, 2)
    assert [q.file for q in state.quarantined] == [batch_file_name(3), batch_file_name(4)]
    assert "header" in state.quarantined[0].reason
    q = settings.quarantine_dir
    assert (q / batch_file_name(3)).read_text() == "not,a,header\n1,2,3\n"
    assert "header" in (q / f"{batch_file_name(3)}.reason.txt").read_text()
    assert not list(settings.rows_dir.iterdir())


def test_keeping_merged_files_when_deletion_is_off(tmp_path):
    settings = MergerSettings(data_dir=tmp_path, delete_merged_batches=False)
    write_batch(settings.rows_dir, 0, batch_text(0, 2))
    engine = MergeEngine(settings)
    engine.run_pass()
    engine.run_pass()
    assert (settings.rows_dir / batch_file_name(0)).exists()
    assert settings.merged_csv.read_bytes() == expected((0, 2))


def test_groups_are_bounded(tmp_path):
    settings = MergerSettings(data_dir=tmp_path, max_group_batches=2)
    for b in range(5):
        write_batch(settings.rows_dir, b, batch_text(b, 3))
    commits = []
    MergeEngine(settings, on_commit=commits.append).run_pass()
    assert [c.batch_ids for c in commits] == [[0, 1], [2, 3], [4]]
    assert settings.merged_csv.read_bytes() == expected(*[(b, 3) for b in range(5)])


def test_disk_full_is_raised_cut_back_and_retried(settings, monkeypatch):
    write_batch(settings.rows_dir, 0, batch_text(0, 2))
    engine = MergeEngine(settings)
    engine.run_pass()
    write_batch(settings.rows_dir, 1, batch_text(1, 50))

    def half_then_full(fd, buffers, offset):
        os.pwrite(fd, bytes(buffers[0][:100]), offset)  # part of the batch reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(commit_module.os, "pwritev", half_then_full)
    with pytest.raises(OSError, match="No space"):
        engine.run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 2))  # cut back to the committed length
    assert engine.state.last_batch_id == 0
    monkeypatch.undo()  # space is back
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 2), (1, 50))


def crash(*_args, **_kwargs):
    raise SystemExit("killed")  # not an OSError: nothing is cleaned up, as with SIGKILL


def test_crash_between_append_and_journal_write_is_recovered_on_restart(settings, monkeypatch):
    for b in range(3):
        write_batch(settings.rows_dir, b, batch_text(b, 4))
    engine = MergeEngine(settings, on_commit=None)
    engine.commit_group((0,))

    monkeypatch.setattr(commit_module.os, "write", crash)
    with pytest.raises(SystemExit):
        engine.commit_group((1, 2))
    engine.close()
    assert len(settings.merged_csv.read_bytes()) > len(expected((0, 4)))  # an uncommitted tail
    monkeypatch.undo()
    restarted = MergeEngine(settings)
    assert settings.merged_csv.read_bytes() == expected((0, 4))
    restarted.run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 4), (1, 4), (2, 4))


def test_short_writes_are_completed(settings, monkeypatch):
    real_pwritev = os.pwritev

    def short_pwritev(fd, buffers, offset):
        return real_pwritev(fd, [bytes(buffers[0][:7])], offset)

    monkeypatch.setattr(commit_module.os, "pwritev", short_pwritev)
    for b in range(3):
        write_batch(settings.rows_dir, b, batch_text(b, 4))
    MergeEngine(settings).run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 4), (1, 4), (2, 4))


def test_an_unexpected_error_is_retried_then_the_file_quarantined_with_its_reason(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, max_file_attempts=2)
    for b in range(3):
        write_batch(settings.rows_dir, b, batch_text(b, 2))
    real_parse = readahead_module.parse_batch

    def parse(raw):
        if rows(1, 2).encode() in raw:
            raise csv.Error("field larger than field limit (131072)")
        return real_parse(raw)

    monkeypatch.setattr(readahead_module, "parse_batch", parse)
    engine = MergeEngine(settings)
    with pytest.raises(MergeAttemptError, match="attempt 1 of 2"):
        engine.run_pass()
    assert engine.state.last_batch_id == 0  # what precedes the failing file is committed
    engine.run_pass()  # second attempt: quarantined, the merge goes on
    assert engine.state.last_batch_id == 2
    assert settings.merged_csv.read_bytes() == expected((0, 2), (2, 2))
    (entry,) = engine.state.quarantined
    assert entry.file == batch_file_name(1) and "Error: field larger" in entry.reason
    assert "failed 2 times" in (settings.quarantine_dir / f"{batch_file_name(1)}.reason.txt").read_text()


def test_a_polars_panic_is_contained(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, max_file_attempts=1)
    write_batch(settings.rows_dir, 0, batch_text(0, 2))

    def parse(raw):
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(readahead_module, "parse_batch", parse)
    engine = MergeEngine(settings)
    engine.run_pass()
    assert engine.state.last_batch_id == 0 and "PanicException" in engine.state.quarantined[0].reason


def test_read_ahead_is_bounded_by_bytes(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, read_ahead_bytes=1)
    for b in range(4):
        write_batch(settings.rows_dir, b, batch_text(b, 50))
    in_flight, peak = 0, 0
    real_load = MergeEngine._load

    def load(item):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        return real_load(item)

    real_read_ahead = MergeEngine._read_ahead

    def read_ahead(self, ready):
        nonlocal in_flight
        for loaded in real_read_ahead(self, ready):
            in_flight -= 1
            yield loaded

    monkeypatch.setattr(MergeEngine, "_load", staticmethod(load))
    monkeypatch.setattr(MergeEngine, "_read_ahead", read_ahead)
    MergeEngine(settings).run_pass()
    assert peak == 1  # a budget below one file: one file at a time
    assert settings.merged_csv.read_bytes() == expected(*[(b, 50) for b in range(4)])


@pytest.mark.parametrize("state_json", ["kept", "deleted"])
def test_crash_after_the_journal_line_keeps_the_commit(settings, monkeypatch, state_json):
    """The journal line is the commit point: an older or missing state.json is rebuilt from it."""
    for b in range(3):
        write_batch(settings.rows_dir, b, batch_text(b, 4))
    engine = MergeEngine(settings, on_commit=None)
    engine.commit_group((0,))
    monkeypatch.setattr(commit_module, "save_state", crash)
    with pytest.raises(SystemExit):
        engine.commit_group((1, 2))
    engine.close()
    monkeypatch.undo()
    if state_json == "deleted":
        settings.state_file.unlink()
    restarted = MergeEngine(settings)
    assert restarted.state.last_batch_id == 2 and restarted.state.rows_merged == 12
    assert restarted.state.events[-1].kind == "state_rebuilt"
    restarted.run_pass()  # the files of batches 1 and 2 are still there: stale, removed
    assert settings.merged_csv.read_bytes() == expected((0, 4), (1, 4), (2, 4))
    assert not list(settings.rows_dir.iterdir())
