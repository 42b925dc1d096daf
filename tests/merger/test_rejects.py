"""rejects.csv: each batch's reject file is accounted for in the batch's commit, then deleted."""

import orjson
import pytest

from contract.csv import REJECT_HEADER, batch_file_name
from services.merger import commit as commit_module
from services.merger.errors import InvalidBatchError
from services.merger.journal import load_journal
from services.merger.merge import MergeEngine
from services.merger.rejects import select_rejects
from services.merger.settings import MergerSettings
from services.merger.state import REJECTS_HEADER_LINE
from tests.merger.batches import LINEAGE_A, LINEAGE_B, keyed_row, write_batch, write_keyed_batch


@pytest.fixture
def settings(tmp_path):
    return MergerSettings(data_dir=tmp_path)


def reject_lines(batch_id: int, partition: int, offsets: range) -> bytes:
    # A value with a CR and an LF inside its quotes: kept byte for byte.
    return b"".join(f'{batch_id},{partition},{o},not JSON,"{{bad\r\n""x"" {o}"\n'.encode() for o in offsets)


def write_rejects(settings: MergerSettings, lineage: str, batch_id: int, partition: int, offsets: range) -> bytes:
    lines = reject_lines(batch_id, partition, offsets)
    write_batch(
        settings.rejects_dir, batch_id, REJECT_HEADER.encode() + b"\n" + lines, name=batch_file_name(batch_id, lineage)
    )
    return lines


def write_both(
    settings: MergerSettings, lineage: str, batch_id: int, partition: int, records: range, rejected: range
) -> bytes:
    """A batch covering `records` of `partition` whose `rejected` ones are in its reject file (the
    manifest covers every record, rows and rejects alike, as the job's does)."""
    lines = write_rejects(settings, lineage, batch_id, partition, rejected)
    rows = "".join(f"{partition},{o},{keyed_row(partition, o)}" for o in records if o not in rejected)
    write_keyed_batch(settings.rows_dir, lineage, batch_id, {partition: (records.start, records.stop)}, rows=rows)
    return lines


def test_select_rejects_keeps_bytes_and_leaves_out_merged_records():
    raw = REJECT_HEADER.encode() + b"\n" + reject_lines(3, 0, range(4)) + reject_lines(3, 1, range(2))
    sel = select_rejects(raw, lambda p, o: o >= {0: 2}.get(p, 0))
    assert sel.data == reject_lines(3, 0, range(2, 4)) + reject_lines(3, 1, range(2))
    assert (sel.kept, sel.skipped) == (4, 2)
    assert select_rejects(REJECT_HEADER.encode() + b"\n", lambda p, o: True).kept == 0
    with pytest.raises(InvalidBatchError, match="header"):
        select_rejects(b"a,b\n1,2\n", lambda p, o: True)
    with pytest.raises(InvalidBatchError, match="batchId,partition,offset"):
        select_rejects(REJECT_HEADER.encode() + b"\nx,0,1,r,v\n", lambda p, o: True)


def test_rejects_are_appended_in_the_batch_commit_and_their_file_deleted(settings):
    a0 = write_both(settings, LINEAGE_A, 0, 0, range(0, 5), range(3, 5))
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (5, 6)})  # no rejects
    a2 = write_both(settings, LINEAGE_A, 2, 1, range(0, 2), range(1, 2))
    engine = MergeEngine(settings)
    engine.run_pass()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + a0 + a2
    st = engine.state
    assert (st.rejects_committed_size, st.rejects_merged) == (settings.merged_rejects.stat().st_size, 3)
    journal = load_journal(settings.journal_file)
    assert journal is not None and journal.rejects_committed_size == st.rejects_committed_size
    assert not list(settings.rejects_dir.iterdir())


def test_a_crash_between_the_append_and_the_commit_is_cut_back_on_start(settings, monkeypatch):
    a0 = write_both(settings, LINEAGE_A, 0, 0, range(0, 4), range(3, 4))
    engine = MergeEngine(settings)
    engine.run_pass()
    a1 = write_both(settings, LINEAGE_A, 1, 0, range(4, 8), range(6, 8))

    def crash(*_args):
        raise SystemExit("killed before the journal line")

    monkeypatch.setattr(commit_module.os, "write", crash)
    with pytest.raises(SystemExit):
        engine.run_pass()
    engine.close()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + a0 + a1  # an uncommitted tail
    monkeypatch.undo()
    restarted = MergeEngine(settings)
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + a0
    assert (settings.rejects_dir / batch_file_name(1, LINEAGE_A)).exists()
    restarted.run_pass()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + a0 + a1
    assert restarted.state.rejects_merged == 3


def test_a_disk_full_cuts_rejects_back_too(settings, monkeypatch):
    write_both(settings, LINEAGE_A, 0, 0, range(0, 4), range(3, 4))

    def no_space(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(commit_module.os, "write", no_space)
    engine = MergeEngine(settings)
    with pytest.raises(OSError):
        engine.run_pass()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE


def test_stale_reject_files_are_removed(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    # Left by a crash after a commit (or a re-run of a merged batch), and of an abandoned lineage ...
    write_rejects(settings, LINEAGE_A, 0, 0, range(0, 1))
    write_rejects(settings, "", 7, 0, range(0, 1))
    # ... but not the file of a batch whose rows file is not there yet.
    pending = write_rejects(settings, LINEAGE_A, 1, 0, range(3, 4))
    engine.run_pass()
    assert [p.name for p in settings.rejects_dir.iterdir()] == [batch_file_name(1, LINEAGE_A)]
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (4, 5)})
    engine.run_pass()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + pending


def test_a_new_lineage_replaying_the_topic_does_not_append_rejects_twice(settings):
    a0 = write_both(settings, LINEAGE_A, 0, 0, range(0, 5), range(3, 5))
    engine = MergeEngine(settings)
    engine.run_pass()
    # The checkpoint is deleted: the new lineage reads from offset 0 and rejects 3, 4 again, and 7.
    write_both(settings, LINEAGE_B, 0, 0, range(0, 6), range(3, 5))
    b1 = write_both(settings, LINEAGE_B, 1, 0, range(6, 8), range(7, 8))
    engine.run_pass()
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + a0 + b1
    st = engine.state
    assert (st.rejects_merged, st.next_offsets, st.events) == (3, {0: 8}, ())
    assert not list(settings.rejects_dir.iterdir())


def test_an_invalid_reject_file_is_quarantined_and_the_batch_merged(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    write_batch(settings.rejects_dir, 0, b"what,is,this\n1,2,3\n", name=batch_file_name(0, LINEAGE_A))
    engine = MergeEngine(settings)
    engine.run_pass()
    assert engine.state.last_batch_id == 0 and settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE
    name = f"rejects-{batch_file_name(0, LINEAGE_A)}"
    assert (settings.quarantine_dir / name).read_bytes() == b"what,is,this\n1,2,3\n"
    assert [q.file for q in engine.state.quarantined] == [name]
    assert not list(settings.rejects_dir.iterdir())


def test_a_state_from_before_rejects_csv_gets_the_file(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    MergeEngine(settings).run_pass()
    doc = orjson.loads(settings.state_file.read_bytes())
    del doc["rejects_committed_size"], doc["rejects_merged"]
    settings.state_file.write_bytes(orjson.dumps(doc))
    settings.journal_file.unlink()
    settings.merged_rejects.unlink()
    engine = MergeEngine(settings)
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE
    assert engine.state.rejects_committed_size == len(REJECTS_HEADER_LINE)


def test_quarantined_reject_files_count_in_the_quarantine_bound(tmp_path):
    settings = MergerSettings(data_dir=tmp_path, quarantine_max_files=1)
    for b in range(2):
        write_keyed_batch(settings.rows_dir, LINEAGE_A, b, {0: (b, b + 1)})
        write_batch(settings.rejects_dir, b, b"what\n", name=batch_file_name(b, LINEAGE_A))
    MergeEngine(settings).run_pass()
    assert sorted(p.name for p in settings.quarantine_dir.iterdir()) == [
        f"rejects-{batch_file_name(1, LINEAGE_A)}",
        f"rejects-{batch_file_name(1, LINEAGE_A)}.reason.txt",
    ]
