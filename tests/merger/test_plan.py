"""Planning: pure rules, no I/O (legacy batches by id; keyed batches by their offsets only)."""

from contract.batches import BatchManifest, OffsetRange
from contract.csv import BatchName, make_lineage
from services.merger.merged_offsets import MAX_GAPS, OffsetCursor, TopicOffsets
from services.merger.plan import KeyedBatch, plan_keyed, plan_merge


def test_fresh_state_takes_consecutive_ids_from_the_first():
    plan = plan_merge(None, [2, 0, 1, 3])
    assert plan.ready == (0, 1, 2, 3)
    assert plan.stale == ()
    assert plan.waiting_for is None
    assert plan.newest == 3


def test_ready_stops_at_a_gap_and_the_gap_is_waited_for():
    plan = plan_merge(4, [5, 6, 8, 9])
    assert plan.ready == (5, 6)
    assert plan.waiting_for is None  # reported once nothing before it is left to merge
    plan = plan_merge(6, [8, 9])
    assert plan.ready == ()
    assert plan.waiting_for == 7
    assert plan.newest == 9


def test_files_at_or_below_the_last_merged_id_are_stale():
    plan = plan_merge(10, [3, 9, 10, 11])
    assert plan.stale == (3, 9, 10)
    assert plan.ready == (11,)


def test_progress_of_the_job_reveals_a_gap_without_a_later_file():
    assert plan_merge(6, [], progress_batch_id=7).waiting_for == 7
    assert plan_merge(6, [], progress_batch_id=6).waiting_for is None
    assert plan_merge(6, []).waiting_for is None  # simply idle


def test_nothing_to_do():
    plan = plan_merge(None, [])
    assert plan.ready == () and plan.stale == () and plan.waiting_for is None and plan.newest is None


def test_first_batch_id_setting_and_limit():
    assert plan_merge(None, [5, 6, 7], first_batch_id=5, limit=2).ready == (5, 6)
    assert plan_merge(None, [5, 6, 7]).waiting_for == 0


# -- keyed batches: planned by their offsets only (pure: manifests in, verdicts out) -------------


#: "old" sorts before "new" by name (and by the creation time in it): it must not matter.
OLD, NEW = make_lineage(1_000_000_000_000, "00000000"), make_lineage(9_000_000_000_000, "ffffffff")


def batch(lineage: str, batch_id: int, ranges: dict, *, seq: int | None = 0, topic_id: str | None = "t1", rows=True):
    manifest = BatchManifest(
        lineage=lineage,
        batch_id=batch_id,
        lineage_seq=seq,
        topic="events",
        topic_id=topic_id,
        offsets={p: OffsetRange(start=s, end=e) for p, (s, e) in ranges.items()},
        input_records=0,
        rows=0,
        rejects=0,
        written_at=0.0,
    )
    return KeyedBatch(BatchName(lineage, batch_id), manifest, rows)


def plan(batches, merged: TopicOffsets, limit=None):
    def unmerged(m: BatchManifest) -> bool:
        return not merged.matches(m.topic, m.topic_id) or merged.batch_unmerged(m.offsets)

    return plan_keyed(batches, unmerged, limit=limit)


def offsets(next_offsets: dict, gaps: dict | None = None) -> TopicOffsets:
    return TopicOffsets("events", "t1", dict(next_offsets), {p: list(g) for p, g in (gaps or {}).items()})


def test_a_batch_is_deleted_only_when_every_record_is_merged():
    merged = offsets({0: 100, 1: 50})
    p = plan(
        [
            batch(NEW, 0, {0: (90, 100), 1: (40, 50)}),  # all merged: stale
            batch(NEW, 1, {0: (100, 100), 1: (50, 50)}),  # empty, at the mark: stale
            batch(NEW, 2, {0: (95, 101), 1: (50, 50)}),  # one record above the mark: ready
        ],
        merged,
    )
    assert p.stale == (BatchName(NEW, 0), BatchName(NEW, 1)) and p.ready == (BatchName(NEW, 2),)


def test_an_older_looking_lineage_with_unmerged_records_is_ready_never_stale():
    merged = offsets({0: 100})
    restored = batch(OLD, 7, {0: (60, 130)}, seq=3)  # a restored backup resumes below the mark
    replayed = batch(OLD, 6, {0: (0, 60)}, seq=1)  # ... its old batches, all merged
    p = plan([restored, replayed, batch(NEW, 3, {0: (130, 140)}, seq=2)], merged)
    assert p.stale == (BatchName(OLD, 6),)
    # written order: the run counter first (NEW ran before the restored OLD), never the names
    assert p.ready == (BatchName(NEW, 3), BatchName(OLD, 7))


def test_records_in_a_gap_are_unmerged_so_a_late_batch_still_merges():
    merged = offsets({0: 100}, {0: [(40, 50)]})  # 40..49 skipped so far
    p = plan([batch(OLD, 0, {0: (30, 45)}), batch(OLD, 1, {0: (50, 60)})], merged)
    assert p.ready == (BatchName(OLD, 0),) and p.stale == (BatchName(OLD, 1),)


def test_an_unknown_topic_id_is_held_never_a_match():
    merged = offsets({0: 100})
    p = plan([batch(NEW, 0, {0: (0, 10)}, topic_id=None), batch(NEW, 1, {0: (100, 110)})], merged)
    assert p.held == (BatchName(NEW, 0),) and p.stale == () and p.ready == (BatchName(NEW, 1),)


def test_another_topic_identity_is_never_checked_against_this_ones_offsets():
    merged = offsets({0: 100})
    p = plan([batch(NEW, 0, {0: (0, 10)}, topic_id="t2")], merged)  # recreated topic: all new
    assert p.ready == (BatchName(NEW, 0),) and p.stale == ()


def test_a_manifest_alone_is_kept_while_its_records_are_not_merged():
    merged = offsets({0: 100})
    in_flight = batch(NEW, 5, {0: (100, 120)}, rows=False)
    leftover = batch(NEW, 4, {0: (80, 100)}, rows=False)
    invalid = KeyedBatch(BatchName(NEW, 9), None, has_rows=False)
    p = plan([in_flight, leftover, invalid], merged)
    assert set(p.stale) == {BatchName(NEW, 4), BatchName(NEW, 9)} and p.ready == () and p.held == ()


def test_same_run_counter_orders_lineages_by_offsets_then_batch_ids():
    merged = offsets({})
    p = plan([batch(OLD, 1, {0: (10, 20)}, seq=None), batch(NEW, 0, {0: (0, 10)}, seq=None)], merged, limit=1)
    assert p.ready == (BatchName(NEW, 0),)


def test_topic_offsets_marks_and_gaps():
    t = offsets({0: 10})
    assert t.mark(0, 20, 30) == []  # a batch past the mark opens a gap
    assert (t.next_offsets, t.offset_gaps) == ({0: 30}, {0: [(10, 20)]})
    assert t.unmerged(0, 15) and not t.unmerged(0, 25) and t.unmerged(0, 30)
    assert t.mark(0, 12, 15) == []  # part of the gap comes later
    assert t.offset_gaps == {0: [(10, 12), (15, 20)]}
    t.mark(0, 0, 40)
    assert (t.next_offsets, t.offset_gaps) == ({0: 40}, {})
    assert t.holds_unmerged(1, 0, 1)  # a partition never merged
    assert not t.matches("events", None)  # an unknown id never matches


def test_past_max_gaps_the_oldest_is_given_up_with_an_event():
    """Every other batch missing: each one past the mark opens a gap; the 65th gap gives up the
    oldest, and the cursor says so in an offsets_given_up event (verify counts those records missing)."""
    lineage = make_lineage(1, "0123abcd")

    def manifest(batch_id: int, start: int) -> BatchManifest:
        return BatchManifest(
            lineage=lineage,
            batch_id=batch_id,
            topic="events",
            topic_id="t1",
            offsets={0: OffsetRange(start=start, end=start + 10)},
            input_records=10,
            rows=10,
            rejects=0,
            written_at=0.0,
        )

    cursor = OffsetCursor(lineage, offsets({0: 10}))
    for i in range(1, MAX_GAPS + 1):
        assert cursor.advance(manifest(i, 20 * i), {0: (20 * i, 20 * i + 9)}, now=1.0) == []
    assert len(cursor.current.offset_gaps[0]) == MAX_GAPS
    events = cursor.advance(manifest(99, 20 * MAX_GAPS + 20), {0: (20 * MAX_GAPS + 20, 20 * MAX_GAPS + 29)}, now=2.0)
    assert [(e.kind, e.at, e.batch_id, e.lineage) for e in events] == [("offsets_given_up", 2.0, 99, lineage)]
    assert "offsets 10..19 were never merged" in events[0].detail
    assert cursor.current.offset_gaps[0][0] == (30, 40) and not cursor.current.unmerged(0, 15)
