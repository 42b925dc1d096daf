"""Every write of the commit is checked (the engine on real files; the failures injected at the
system calls): a short or failed journal line, a journal that cannot be cut back, state.json that
cannot be written, temp files left behind. tests/merger/test_disk_full.py does it on a real full
disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from services.merger import commit as commit_module
from services.merger.errors import CommitWriteError
from services.merger.journal import load_journal
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE
from services.merger.watcher import write_blocked_of
from tests.merger.batches import batch_text, rows, write_batch

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def settings(tmp_path):
    return MergerSettings(data_dir=tmp_path)


def expected(*batches: tuple[int, int]) -> bytes:
    return HEADER_LINE + "".join(rows(b, n) for b, n in batches).encode()


def short_journal_write(monkeypatch, settings: MergerSettings, *, cut_fails: bool = False) -> None:
    """The journal line is written in half, then the disk is full (and, with `cut_fails`, the
    journal cannot be cut back either)."""
    real_write, real_ftruncate = os.write, os.ftruncate

    def write(fd, data):
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(settings.journal_file.resolve()):
            if len(data) > 10:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise NO_SPACE
        return real_write(fd, data)

    def ftruncate(fd, size):
        if cut_fails and os.path.realpath(f"/proc/self/fd/{fd}") == str(settings.journal_file.resolve()):
            raise OSError(errno.EIO, "Input/output error")
        return real_ftruncate(fd, size)

    monkeypatch.setattr(commit_module.os, "write", write)
    monkeypatch.setattr(commit_module.os, "ftruncate", ftruncate)


def batch_0_merged_batch_1_waiting(settings) -> tuple[MergeEngine, bytes, Path]:
    """An engine that has merged batch 0 (3 rows), the journal then, and batch 1 (40 rows) written."""
    write_batch(settings.rows_dir, 0, batch_text(0, 3))
    engine = MergeEngine(settings)
    engine.run_pass()
    journal = settings.journal_file.read_bytes()
    return engine, journal, write_batch(settings.rows_dir, 1, batch_text(1, 40))


def test_a_short_journal_write_is_cut_back_and_nothing_deleted(settings, monkeypatch):
    engine, journal, path = batch_0_merged_batch_1_waiting(settings)
    short_journal_write(monkeypatch, settings)
    with pytest.raises(CommitWriteError) as e:
        engine.run_pass()
    assert (e.value.step, e.value.errno, e.value.filename) == ("journal", errno.ENOSPC, str(settings.journal_file))
    assert settings.journal_file.read_bytes() == journal  # the half line cut off
    assert settings.merged_csv.read_bytes() == expected((0, 3))  # cut back to the committed length
    assert engine.state.last_batch_id == 0 and path.exists()
    monkeypatch.undo()  # space is back
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == expected((0, 3), (1, 40)) and not path.exists()
    assert load_journal(settings.journal_file).last_batch_id == 1


def test_a_torn_journal_line_left_behind_is_cut_before_the_next_line_and_on_start(settings, monkeypatch):
    engine, journal, path = batch_0_merged_batch_1_waiting(settings)
    short_journal_write(monkeypatch, settings, cut_fails=True)
    with pytest.raises(CommitWriteError):
        engine.run_pass()
    assert len(settings.journal_file.read_bytes()) > len(journal)  # torn line still there
    assert settings.merged_csv.stat().st_size > len(expected((0, 3)))  # not cut before the journal is
    monkeypatch.undo()
    # In the same process: the torn bytes are cut before the next line is appended.
    engine.run_pass()
    lines = settings.journal_file.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.startswith(b"{") and line.endswith(b"}") for line in lines[:-1])
    assert settings.merged_csv.read_bytes() == expected((0, 3), (1, 40)) and not path.exists()
    engine.close()

    # After a crash: a torn last line (here a complete JSON line missing its newline, so it would
    # parse) is cut off on start and never trusted.
    torn = lines[-2].replace(b'"last_batch_id":1', b'"last_batch_id":9')
    with open(settings.journal_file, "ab") as f:
        f.write(torn)
    settings.state_file.unlink()
    restarted = MergeEngine(settings)
    assert restarted.state.last_batch_id == 1
    assert settings.journal_file.read_bytes().endswith(b"}\n")


def test_state_json_not_written_keeps_the_files_until_it_is(settings, monkeypatch):
    write_batch(settings.rows_dir, 0, batch_text(0, 3))
    engine = MergeEngine(settings)
    engine.run_pass()
    paths = [write_batch(settings.rows_dir, b, batch_text(b, 5)) for b in (1, 2)]

    def no_space(*_args):
        raise NO_SPACE

    monkeypatch.setattr(commit_module, "save_state", no_space)
    for _ in range(2):  # the retry writes state.json first, and fails again: nothing deleted
        with pytest.raises(CommitWriteError) as e:
            engine.run_pass()
        assert e.value.step == "state" and e.value.filename == str(settings.state_file)
        assert all(p.exists() for p in paths)
    assert engine.state.last_batch_id == 2  # committed: the journal has it
    assert load_journal(settings.journal_file).last_batch_id == 2
    assert settings.merged_csv.read_bytes() == expected((0, 3), (1, 5), (2, 5))
    monkeypatch.undo()
    engine.run_pass()
    assert not any(p.exists() for p in paths)
    engine.close()
    assert MergeEngine(settings).state.last_batch_id == 2  # state.json written


def test_temp_files_left_by_a_crash_are_pruned(settings):
    settings.quarantine_dir.mkdir(parents=True)
    left = [
        settings.merger_dir / ".state.json.tmp-999999",
        settings.merger_dir / ".devices.json.tmp-999999",
        settings.merger_dir / f".merged.csv.tmp-{os.getpid()}",  # a crashed process of the same id
        settings.quarantine_dir / ".batch-00000007.csv.tmp-999999",
    ]
    for p in left:
        p.write_bytes(b"half")
    engine = MergeEngine(settings)
    assert not any(p.exists() for p in left)
    # After each pass too: the merge thread's own temp files and any of another process; not
    # devices.json's of this process (its writer may be writing it now).
    own_devices = settings.merger_dir / f".devices.json.tmp-{os.getpid()}"
    late = [settings.merger_dir / f".state.json.tmp-{os.getpid()}", settings.quarantine_dir / ".x.tmp-1"]
    for p in [*late, own_devices]:
        p.write_bytes(b"half")
    engine.run_pass()
    assert not any(p.exists() for p in late) and own_devices.exists()


def test_a_failed_write_is_described_with_its_folder(settings):
    e = CommitWriteError.of("rows", settings.merged_csv, NO_SPACE)
    w = write_blocked_of(e, "pass", settings.merger_dir, since=5.0, attempts=2, retry_in_s=4.0)
    assert (w.condition, w.folder, w.path, w.step, w.errno) == (
        "disk full",
        str(settings.merger_dir),
        str(settings.merged_csv),
        "rows",
        errno.ENOSPC,
    )
    quota = write_blocked_of(
        OSError(errno.EDQUOT, "Disk quota exceeded"), "start", settings.merger_dir, since=1, attempts=1, retry_in_s=1
    )
    assert (quota.condition, quota.folder, quota.step) == ("quota exceeded", str(settings.merger_dir), "start")


def test_writes_go_in_calls_of_at_most_write_max_bytes_in_order(tmp_path, monkeypatch):
    """Big groups are written in bounded calls (writes.WRITE_MAX: a big write call is slow to land
    in the page cache), a chunk bigger than that in slices; the bytes are the same, short writes
    are still finished."""
    from services.merger import writes

    monkeypatch.setattr(writes, "WRITE_MAX", 100)
    chunks = [b"a" * 30, b"b" * 80, b"c" * 250, b"", b"d" * 100, b"e" * 5]
    groups = list(writes.write_groups(chunks))
    assert all(sum(len(c) for c in g) <= 100 for g in groups)
    assert b"".join(b"".join(g) for g in groups) == b"".join(chunks)
    monkeypatch.setattr(writes, "IOV_BATCH", 2)
    assert all(len(g) <= 2 for g in writes.write_groups([b"x"] * 7))

    calls: list[int] = []
    real_pwritev = os.pwritev

    def short_pwritev(fd, buffers, offset):
        calls.append(sum(len(b) for b in buffers))
        return real_pwritev(fd, [bytes(buffers[0][:7])], offset)  # (a short write every time)

    monkeypatch.setattr(writes.os, "pwritev", short_pwritev)
    path = tmp_path / "out"
    path.write_bytes(b"HEAD\n")
    fd = os.open(path, os.O_WRONLY)
    try:
        writes.pwrite_all(fd, chunks, 5)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"HEAD\n" + b"".join(chunks)
    assert calls and max(calls) <= 100
