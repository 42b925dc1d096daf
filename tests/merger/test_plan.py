from services.merger.plan import plan_merge


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
