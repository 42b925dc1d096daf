import pytest

from services.merger.errors import StateCorruptError
from services.merger.recovery import recover
from services.merger.state import HEADER_LINE, MergerState, QuarantineEntry, load_state, save_state


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "state.json", tmp_path / "merged.csv"


def test_a_new_merged_csv_gets_the_header_once(paths):
    state_path, merged = paths
    state = recover(state_path, merged)
    assert merged.read_bytes() == HEADER_LINE
    assert state.committed_size == len(HEADER_LINE) and state.last_batch_id is None
    assert load_state(state_path) == state
    again = recover(state_path, merged)  # a restart changes nothing
    assert again == state and merged.read_bytes() == HEADER_LINE


@pytest.mark.parametrize("partial", [b"", HEADER_LINE[:7], HEADER_LINE])
def test_crash_while_creating_the_file_is_repaired(paths, partial):
    state_path, merged = paths
    merged.write_bytes(partial)  # merged.csv written, state.json not yet
    state = recover(state_path, merged)
    assert merged.read_bytes() == HEADER_LINE and state.committed_size == len(HEADER_LINE)


def test_a_partial_append_is_cut_back_to_the_committed_length(paths):
    state_path, merged = paths
    state = recover(state_path, merged)
    committed = HEADER_LINE + b"a,row\n"
    merged.write_bytes(committed + b"half of a ro")
    save_state(state_path, MergerState(state.generation, last_batch_id=0, committed_size=len(committed)))
    state = recover(state_path, merged)
    assert merged.read_bytes() == committed
    assert state.last_batch_id == 0


def test_state_round_trip_keeps_quarantine_entries(paths):
    state_path, _ = paths
    state = MergerState.fresh().with_quarantined([QuarantineEntry("batch-000000000001.csv", "bad header", 1.5)])
    save_state(state_path, state)
    assert load_state(state_path) == state


def test_merged_csv_shorter_than_committed_is_refused(paths):
    state_path, merged = paths
    recover(state_path, merged)
    save_state(state_path, MergerState("g", last_batch_id=3, committed_size=10_000))
    with pytest.raises(StateCorruptError, match="fewer than"):
        recover(state_path, merged)
    merged.unlink()
    with pytest.raises(StateCorruptError, match="missing"):
        recover(state_path, merged)


def test_unknown_merged_csv_without_state_is_not_overwritten(paths):
    state_path, merged = paths
    merged.write_bytes(HEADER_LINE + b"somebody's,rows\n")
    with pytest.raises(StateCorruptError):
        recover(state_path, merged)
    assert merged.read_bytes() == HEADER_LINE + b"somebody's,rows\n"
