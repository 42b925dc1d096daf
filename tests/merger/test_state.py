from pathlib import Path

import orjson
import pytest

from contract.merger_status import QuarantinedBatch
from services.merger.device_snapshot import DevicesSnapshot
from services.merger.devices import DeviceBook
from services.merger.errors import StateCorruptError
from services.merger.journal import journal_line
from services.merger.recovery import recover
from services.merger.state import HEADER_LINE, MergerState, load_state, save_state


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
    state = MergerState.fresh().with_quarantined(
        [QuarantinedBatch(file="batch-000000000001.csv", reason="bad header", at=1.5)]
    )
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


DATA = Path(__file__).parent / "data"


#: The fields compaction added to a segment record, at the values a segment from before it has.
COMPACTION_DEFAULTS = {"parquet": None, "csv_kept": True, "group_bytes": []}


def _without_compaction_fields(doc: dict) -> dict:
    """The document without the fields added since data/state_v2.json (each at its default there):
    the segments' compaction fields and the event totals."""

    def seg(g: dict) -> dict:
        assert {k: g[k] for k in COMPACTION_DEFAULTS} == COMPACTION_DEFAULTS
        return {k: v for k, v in g.items() if k not in COMPACTION_DEFAULTS}

    assert doc.pop("event_counts") == {}
    return {
        **doc,
        "active": seg(doc["active"]),
        "segments": [seg(g) for g in doc["segments"]],
        "retired": [seg(g) for g in doc["retired"]],
    }


def test_a_state_file_of_the_current_format_loads_and_is_written_back_byte_for_byte(tmp_path):
    """data/state_v2.json was written by the merger before state.json had a model (every field set)
    and before compaction: written back, it is the same document with the segments' compaction
    fields at their defaults, and that file round-trips byte for byte."""
    written = (DATA / "state_v2.json").read_bytes()
    state = load_state(DATA / "state_v2.json")
    assert state is not None and state.next_offsets == {0: 5, 1: 7, 3: 10} and state.offset_gaps[2] == ((1, 3), (5, 6))
    assert state.quarantined[0].reason == "bad" and state.retired_topics[0].next_offsets == {0: 1, 1: 2}
    save_state(tmp_path / "state.json", state)
    rewritten = (tmp_path / "state.json").read_bytes()
    assert _without_compaction_fields(orjson.loads(rewritten)) == orjson.loads(written)
    save_state(tmp_path / "again.json", load_state(tmp_path / "state.json"))
    assert (tmp_path / "again.json").read_bytes() == rewritten
    # a journal line is the same document without the quarantine and the events
    line = _without_compaction_fields(orjson.loads(journal_line(state)))
    assert line == {k: v for k, v in orjson.loads(written).items() if k not in ("quarantined", "events")}


def test_a_state_from_before_segments_offsets_and_rejects_loads(tmp_path):
    """The first format: no version, no offsets, no segments (merged.csv is its one segment)."""
    old = {
        "generation": "g0",
        "last_batch_id": 4,
        "committed_size": 500,
        "batches_merged": 5,
        "rows_merged": 9,
        "empty_batches": 0,
        "quarantined": [{"file": "batch-000000000002.csv", "reason": "bad header", "at": 1.0}],
        "last_merge_at": 10.0,
        "events": [],
    }
    (tmp_path / "state.json").write_bytes(orjson.dumps(old))
    state = load_state(tmp_path / "state.json")
    assert state is not None and (state.commit_seq, state.next_offsets, state.segments) == (0, {}, ())
    assert (state.active.seq, state.active.size, state.active.rows) == (0, 500, 9)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"committed_size": None}, "committed_size"),
        ({"surprise": 1}, "surprise"),
        ({"next_offsets": {"0": "x"}}, "next_offsets"),
    ],
)
def test_a_malformed_state_is_refused_naming_the_field(tmp_path, change, says):
    doc = {**orjson.loads((DATA / "state_v2.json").read_bytes()), **change}
    (tmp_path / "state.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(StateCorruptError, match=says):
        load_state(tmp_path / "state.json")
    del doc["generation"]
    (tmp_path / "state.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(StateCorruptError, match="missing generation"):
        load_state(tmp_path / "state.json")


def test_a_device_snapshot_of_the_current_format_loads_and_is_written_back_byte_for_byte():
    """data/devices_v2.json was written by the merger before devices.json had a model."""
    written = (DATA / "devices_v2.json").read_bytes()
    doc = DevicesSnapshot.model_validate_json(written)
    book = DeviceBook.from_doc(doc.book)
    assert list(book.total) == ["D002", "D001", "D003"] and book.total["D001"].temp_min == -4
    again = DevicesSnapshot(generation=doc.generation, covered_size=doc.covered_size, book=book.to_doc())
    assert orjson.dumps(again.model_dump(mode="json"), option=orjson.OPT_INDENT_2) == written
