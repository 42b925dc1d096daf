"""Exactly once keyed by Kafka offsets: the engine on real keyed batch files (lineage names, manifests)."""

import os

import pytest
from fastapi.testclient import TestClient

from contract.csv import batch_file_name, manifest_file_name
from services.merger import merge as merge_module
from services.merger.app import create_app
from services.merger.errors import MergeAttemptError
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE
from tests.helpers import wait_for
from tests.merger.batches import LINEAGE_A, LINEAGE_B, keyed_row, keyed_rows, write_batch, write_keyed_batch


@pytest.fixture
def settings(tmp_path):
    return MergerSettings(data_dir=tmp_path)


def merged(*ranges: dict[int, tuple[int, int]]) -> bytes:
    return HEADER_LINE + "".join(keyed_rows(r) for r in ranges).encode()


def test_rows_lose_their_kafka_columns_and_the_offsets_are_recorded(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3), 1: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (3, 5), 1: (2, 2), 2: (0, 1)})
    engine = MergeEngine(settings)
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 3), 1: (0, 2)}, {0: (3, 5), 2: (0, 1)})
    st = engine.state
    assert (st.lineage, st.last_batch_id, st.next_offsets) == (LINEAGE_A, 1, {0: 5, 1: 2, 2: 1})
    assert (st.topic, st.topic_id, st.rows_merged, st.rows_skipped, st.events) == ("device-events", "topic-1", 8, 0, ())
    assert not list(settings.rows_dir.iterdir())  # rows files and manifests deleted


def test_a_new_lineage_replaying_the_topic_adds_only_new_records(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 4), 1: (0, 3)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (4, 6), 1: (3, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    # The checkpoint is deleted: batch ids restart at 0, from the earliest offset, other boundaries.
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 5), 1: (0, 1)})
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 1, {0: (5, 8), 1: (1, 5)})
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 4), 1: (0, 3)}, {0: (4, 6)}, {0: (6, 8)}, {1: (3, 5)})
    st = engine.state
    assert (st.lineage, st.last_batch_id, st.next_offsets) == (LINEAGE_B, 1, {0: 8, 1: 5})
    # batch 0 of B holds only merged records: deleted unread; batch 1 drops its merged rows
    assert st.rows_skipped == 1 + 2 and st.rows_merged == 13 and st.events == ()


def test_batches_of_every_lineage_are_merged_by_offsets_and_a_late_rerun_is_stale(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 3)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (2, 4)})
    engine = MergeEngine(settings)
    engine.run_pass()
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (2, 4)})  # a late re-run of the old lineage
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 4)})
    assert engine.state.next_offsets == {0: 4} and engine.state.rows_skipped == 2 + 1
    assert not list(settings.rows_dir.iterdir())


def test_a_recreated_topic_is_an_event_and_its_records_are_merged(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 5)})
    engine = MergeEngine(settings)
    engine.run_pass()
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 2)}, topic_id="topic-2")
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 5)}, {0: (0, 2)})
    (event,) = engine.state.events
    assert event.kind == "topic_recreated" and "topic-2" in event.detail and "topic-1" in event.detail
    assert (engine.state.topic_id, engine.state.next_offsets) == ("topic-2", {0: 2})


def test_skipped_and_backward_offsets_are_events(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (5, 6)})  # 2..4 deleted before read
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 2, {0: (1, 7)})  # Spark went back to 1
    engine = MergeEngine(settings)
    engine.run_pass()
    assert [e.kind for e in engine.state.events] == ["offsets_skipped", "offsets_backwards"]
    assert "offsets 2..4" in engine.state.events[0].detail
    # batch 2 holds the skipped records 2..4: merged after all (the gap closes), 1 and 5 dropped
    assert settings.merged_csv.read_bytes() == merged({0: (0, 2)}, {0: (5, 6)}, {0: (2, 5)}, {0: (6, 7)})
    assert engine.state.offset_gaps == {}


def test_cr_inside_a_field_of_a_keyed_row_is_kept_and_filtered_rows_too(settings):
    cr_row = keyed_row(0, 1, device='"D\r\n,1"')
    quoted_row = keyed_row(0, 2, device='"x""\ny"')
    rows = f"0,0,{keyed_row(0, 0)}0,1,{cr_row}0,2,{quoted_row}"
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 1)})
    engine = MergeEngine(settings)
    engine.run_pass()
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 3)}, rows=rows)
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == HEADER_LINE + (keyed_row(0, 0) + cr_row + quoted_row).encode()


def test_a_batch_without_its_manifest_is_quarantined(settings):
    path = write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    (settings.rows_dir / path.name.replace(".csv", ".manifest.json")).unlink()
    engine = MergeEngine(settings)
    engine.run_pass()
    assert "manifest" in engine.state.quarantined[0].reason and engine.state.last_batch_id == 0


def test_the_quarantine_is_pruned_to_its_bounds(tmp_path):
    settings = MergerSettings(data_dir=tmp_path, quarantine_max_files=2)
    for b in range(4):
        write_batch(settings.rows_dir, b, "not,a,header\n")
    MergeEngine(settings).run_pass()
    kept = sorted(p.name for p in settings.quarantine_dir.iterdir())
    assert kept == sorted(
        [batch_file_name(2), batch_file_name(3), f"{batch_file_name(2)}.reason.txt", f"{batch_file_name(3)}.reason.txt"]
    )


def test_deleted_state_is_rebuilt_from_the_journal_and_nothing_is_merged_twice(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (3, 5)})
    engine.run_pass()
    engine.close()
    settings.state_file.unlink()
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 6)})  # and a replay on top
    restarted = MergeEngine(settings)
    assert restarted.state.next_offsets == {0: 5} and restarted.state.events[-1].kind == "state_rebuilt"
    restarted.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 6)})


def test_the_journal_is_compacted(tmp_path):
    settings = MergerSettings(data_dir=tmp_path, journal_max_bytes=1)
    engine = MergeEngine(settings)
    for b in range(3):
        write_keyed_batch(settings.rows_dir, LINEAGE_A, b, {0: (b, b + 1)})
        engine.run_pass()
    assert settings.journal_file.read_bytes().count(b"\n") <= 2


def test_manifests_left_by_a_crash_are_removed_once_their_records_are_merged(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 1, {0: (2, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    # manifests without their rows file: merged records (an old lineage's, a processed one's), records
    # not merged yet (the next batch, being written), and one that does not validate
    orphans = {
        "old": write_keyed_batch(settings.rows_dir, LINEAGE_A, 7, {0: (0, 3)}),
        "done": write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 2)}),
        "pending": write_keyed_batch(settings.rows_dir, LINEAGE_B, 2, {0: (3, 4)}),
        "invalid": write_keyed_batch(settings.rows_dir, LINEAGE_B, 9, {0: (9, 10)}),
    }
    for path in orphans.values():
        path.unlink()
    (settings.rows_dir / manifest_file_name(orphans["invalid"].name)).write_text("{}")
    engine.run_pass()
    kept = sorted(p.name for p in settings.rows_dir.iterdir())
    assert kept == [manifest_file_name(orphans["pending"].name)]  # the next batch's, kept


def test_a_batch_retried_after_an_unexpected_error_leaves_no_trace_in_the_commit_before_it(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, max_file_attempts=2)
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (2, 3)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 2, {0: (0, 4)}, topic_id="topic-2")
    failures = [RuntimeError("a bug")]
    real_select_rows = merge_module.select_rows

    def select_rows(parsed, keep):
        if failures and parsed.rows == 4:
            raise failures.pop()
        return real_select_rows(parsed, keep)

    monkeypatch.setattr(merge_module, "select_rows", select_rows)
    engine = MergeEngine(settings)
    with pytest.raises(MergeAttemptError):
        engine.run_pass()
    st = engine.state
    assert (st.last_batch_id, st.topic_id, st.next_offsets, st.events) == (1, "topic-1", {0: 3}, ())
    engine.run_pass()
    assert [e.kind for e in engine.state.events] == ["topic_recreated"]
    assert settings.merged_csv.read_bytes() == merged({0: (0, 3)}, {0: (0, 4)})


def test_a_restored_lineage_that_sorts_older_by_name_and_mtime_is_merged_not_deleted(settings):
    """A checkpoint backup restored after a reset: its lineage name (and the files' mtimes) sort before
    the lineage that ran in between, but its new batches hold records nobody else has."""
    for b, r in enumerate([(0, 10), (10, 20)]):  # the newer-looking lineage, run 1
        write_keyed_batch(settings.rows_dir, LINEAGE_B, b, {0: r}, lineage_seq=1)
    engine = MergeEngine(settings)
    engine.run_pass()
    restored = [  # run 2: the restored backup resumes from its own (older) offsets, ids continue
        write_keyed_batch(settings.rows_dir, LINEAGE_A, b, {0: r}, lineage_seq=2)
        for b, r in [(5, (5, 15)), (6, (15, 30))]
    ]
    for path in settings.rows_dir.iterdir():
        os.utime(path, (1_000_000, 1_000_000))  # cp -a / tar keep old mtimes
    assert all(p.exists() for p in restored)
    result = engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 30)})
    st = engine.state
    assert (st.lineage, st.last_batch_id, st.next_offsets, st.rows_skipped) == (LINEAGE_A, 6, {0: 30}, 5)
    assert result.plan.waiting_for is None and not list(settings.rows_dir.iterdir())


def test_an_unknown_topic_id_holds_the_batch_with_one_event_until_it_is_known(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)})
    engine = MergeEngine(settings)
    engine.run_pass()
    held = write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (3, 6)}, topic_id=None)
    engine.run_pass()
    engine.run_pass()  # retried each pass, reported once
    assert held.exists() and engine.state.next_offsets == {0: 3}
    assert [e.kind for e in engine.state.events] == ["topic_id_unknown"]
    assert held.name in engine.state.events[0].detail
    assert MergeEngine(settings).state.events == engine.state.events  # saved
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (3, 6)})  # the job re-ran it with the id
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 6)}) and not held.exists()


def test_a_recreated_topics_leftover_batch_is_checked_against_its_own_topic(settings):
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 5)})
    engine = MergeEngine(settings)
    engine.run_pass()
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 0, {0: (0, 3)}, topic_id="topic-2", lineage_seq=1)
    engine.run_pass()
    # a late re-run of the old topic's batch: merged already for topic-1, so deleted, not "recreated"
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 5)})
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 1, {0: (3, 4)}, topic_id="topic-2", lineage_seq=1)
    engine.run_pass()
    assert settings.merged_csv.read_bytes() == merged({0: (0, 5)}, {0: (0, 4)})
    assert [e.kind for e in engine.state.events] == ["topic_recreated"]
    st = engine.state
    assert (st.topic_id, st.next_offsets, [r.topic_id for r in st.retired_topics]) == ("topic-2", {0: 4}, ["topic-1"])
    assert not list(settings.rows_dir.iterdir())


def test_attempt_counters_are_dropped_with_their_files(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, max_file_attempts=5)
    path = write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})

    def select_rows(parsed, keep):
        raise RuntimeError("a bug")

    monkeypatch.setattr(merge_module, "select_rows", select_rows)
    monkeypatch.setattr(merge_module.OffsetCursor, "keep", lambda self, parsed: parsed.kafka_offset >= 1)
    engine = MergeEngine(settings)
    with pytest.raises(MergeAttemptError):
        engine.run_pass()
    assert engine._attempts == {path.name: 1}
    path.unlink()  # removed by the operator
    engine.run_pass()
    assert engine._attempts == {}


def test_source_events_are_counted_in_metrics_each_once(settings):
    """merger_source_events_total{kind} (the SourceRecordsNotMerged alert's): every kind exported
    from the start, each event counted once; the totals are the state's, so a restart shows the
    same totals again (never a drop to 0 that increase() would take for new events)."""
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 1, {0: (5, 6)})  # 2..4 deleted before read

    def count(client: TestClient, kind: str) -> float | None:
        text = client.get("/metrics").text
        line = f'merger_source_events_total{{kind="{kind}"}} '
        return float(text.split(line, 1)[1].split("\n", 1)[0]) if line in text else None

    with TestClient(create_app(settings)) as client:
        wait_for(lambda: count(client, "offsets_skipped") == 1, 10, "the skipped offsets counted")
        assert count(client, "offsets_given_up") == 0 and count(client, "topic_recreated") == 0
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, 10, "ready again")
        assert count(client, "offsets_skipped") == 1
        write_keyed_batch(settings.rows_dir, LINEAGE_A, 2, {0: (1, 7)})  # Spark went back to 1
        wait_for(lambda: count(client, "offsets_backwards") == 1, 10, "the backward offsets counted")
        assert count(client, "offsets_skipped") == 1
    settings.state_file.unlink()  # rebuilt from the journal: its totals, and one state_rebuilt
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, 10, "ready again")
        assert [count(client, k) for k in ("offsets_skipped", "offsets_backwards", "state_rebuilt")] == [1, 1, 1]
