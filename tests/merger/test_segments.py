"""merged.csv in segments (MERGER_SEGMENT_BYTES > 0): rollover by size under the commit protocol,
SIGKILL at every point of a rollover and of a retention, and retention's retired rows counted."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from contract.segments import SEGMENT_INDEX, Segment, SegmentIndex, segment_file
from services.merger import commit as commit_module
from services.merger.errors import CommitWriteError
from services.merger.journal import JOURNAL_TAIL_BYTES, journal_line, load_journal
from services.merger.merge import MergeEngine
from services.merger.query import RowQuery
from services.merger.query_api import query_sources
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE, MergerState
from tests.documents import devices as devices_of
from tests.documents import merger_status
from tests.helpers import wait_for
from tests.merger.batches import batch_text, rows, write_batch

N_BATCHES = 12
ROWS = 7  # ~1 KB a batch: a segment of 2 KB holds two or three


def settings_of(data_dir: Path, **overrides: object) -> MergerSettings:
    values: dict[str, object] = {"segment_bytes": 2048, "max_group_batches": 1, **overrides}
    return MergerSettings(data_dir=data_dir, **values)  # type: ignore[arg-type]


def write_all(settings: MergerSettings) -> None:
    for b in range(N_BATCHES):
        write_batch(settings.rows_dir, b, batch_text(b, ROWS))


def retained_bytes(settings: MergerSettings, state: MergerState) -> bytes:
    """The retained segments read one after the other: one header, then each one's data lines."""
    out = [HEADER_LINE]
    for g in state.retained:
        size = state.committed_size if g.seq == state.active.seq else g.size
        data = g.path(settings.merger_dir).read_bytes()
        assert data.startswith(HEADER_LINE) and len(data) == size, g.file  # closed: whole, never cut
        out.append(data[len(HEADER_LINE) :])
    return b"".join(out)


def all_rows(first: int = 0) -> bytes:
    return HEADER_LINE + "".join(rows(b, ROWS) for b in range(first, N_BATCHES)).encode()


def test_rollover_by_size_keeps_every_row_once_in_order(tmp_path):
    settings = settings_of(tmp_path)
    write_all(settings)
    engine = MergeEngine(settings)
    engine.run_pass()
    state = engine.state
    engine.close()
    assert len(state.segments) >= 3 and state.active.seq == len(state.segments)
    assert retained_bytes(settings, state) == all_rows()
    assert sum(g.rows for g in state.retained) == state.rows_merged == N_BATCHES * ROWS
    for g in state.segments:  # bounded: the limit plus one commit
        assert g.size < 2048 + len(batch_text(0, ROWS)) and g.closed_at is not None
        assert g.event_time_us is not None
    # Each one starts where the previous ended in the merged stream.
    for a, b in zip(state.retained, state.retained[1:], strict=False):
        assert b.start == a.start + a.size - len(HEADER_LINE)
    index = SegmentIndex.model_validate(orjson.loads((settings.merger_dir / SEGMENT_INDEX).read_bytes()))
    assert [g.file for g in index.segments] == [g.file for g in state.retained]
    # A restart finds it all as it was.
    again = MergeEngine(settings)
    assert again.state.retained == state.retained
    again.close()


def test_segments_off_is_one_merged_csv(tmp_path):
    settings = settings_of(tmp_path, segment_bytes=0)
    write_all(settings)
    engine = MergeEngine(settings)
    engine.run_pass()
    engine.close()
    assert settings.merged_csv.read_bytes() == all_rows()
    assert not (settings.merger_dir / "segments").exists() and not (settings.merger_dir / SEGMENT_INDEX).exists()


def test_retention_by_bytes_retires_the_oldest_and_counts_their_rows(tmp_path):
    settings = settings_of(tmp_path, retain_bytes=3000)
    write_all(settings)
    engine = MergeEngine(settings)
    engine.run_pass()
    state = engine.state
    engine.close()
    assert state.segments_retired >= 1 and state.rows_retired == sum(g.rows for g in state.retired)
    assert sum(g.size for g in state.segments) <= 3000
    assert state.rows_retired + sum(g.rows for g in state.retained) == state.rows_merged == N_BATCHES * ROWS
    assert not any(g.path(settings.merger_dir).exists() for g in state.retired)
    first_batch = state.rows_retired // ROWS
    assert retained_bytes(settings, state) == all_rows(first_batch)


def test_retention_by_age(tmp_path):
    now = [1_000_000.0]
    settings = settings_of(tmp_path, retain_age_s=60)
    write_all(settings)
    engine = MergeEngine(settings, clock=lambda: now[0])
    engine.run_pass()
    assert engine.state.segments and not engine.state.retired
    now[0] += 61
    engine.run_pass()  # (each pass retires what is due)
    assert not engine.state.segments and engine.state.rows_retired == N_BATCHES * ROWS - engine.state.active.rows
    engine.close()


CHILD = """
import os, signal, sys
from services.merger import commit as cm
from services.merger.merge import MergeEngine
from services.merger.query import RowQuery
from services.merger.query_api import query_sources
from services.merger.settings import MergerSettings

data_dir, point = sys.argv[1], sys.argv[2]
def kill(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)
real_write, real_save, real_publish = cm.atomic_write_bytes, cm.save_state, cm.publish_index
if point == "before_new_file":
    cm.atomic_write_bytes = kill
elif point == "after_new_file":
    cm.atomic_write_bytes = lambda p, d, **k: (real_write(p, d, **k), kill())
elif point == "after_journal_line":
    cm.save_state = lambda p, s: kill() if s.segments else real_save(p, s)
elif point == "after_state_json":
    cm.publish_index = lambda d, s: kill() if s.segments else real_publish(d, s)
elif point == "retired_not_removed":
    cm.publish_index = lambda d, s: kill() if s.segments_retired else real_publish(d, s)
settings = MergerSettings(data_dir=data_dir, segment_bytes=2048, max_group_batches=1, retain_bytes=3000)
MergeEngine(settings).run_pass()
sys.exit(3)
"""


@pytest.mark.integration  # (a merger child process, SIGKILLed)
@pytest.mark.parametrize(
    "point", ["before_new_file", "after_new_file", "after_journal_line", "after_state_json", "retired_not_removed"]
)
def test_sigkill_around_a_rollover_loses_and_duplicates_nothing(tmp_path, point):
    reference = settings_of(tmp_path / "reference", retain_bytes=3000)
    write_all(reference)
    ref = MergeEngine(reference)
    ref.run_pass()
    ref.close()

    settings = settings_of(tmp_path / "killed", retain_bytes=3000)
    write_all(settings)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run([sys.executable, "-c", CHILD, str(settings.data_dir), point], env=env, timeout=120)
    assert done.returncode == -9, f"not killed at {point}"
    engine = MergeEngine(settings)  # recovery
    segment_files = sorted(p.name for p in (settings.merger_dir / "segments").iterdir())
    listed = [Path(g.file).name for g in engine.state.retained if g.seq]
    listed += [Path(g.parquet).name for g in engine.state.segments if g.parquet]  # (compacted meanwhile)
    assert segment_files == sorted(listed)  # no stray file
    engine.run_pass()
    state = engine.state
    engine.close()
    # The verify of a merger: every row once (retired or retained), in order, none twice.
    assert state.rows_merged == N_BATCHES * ROWS == state.rows_retired + sum(g.rows for g in state.retained)
    assert retained_bytes(settings, state) == all_rows(state.rows_retired // ROWS)
    assert retained_bytes(settings, state) == retained_bytes(reference, ref.state)
    assert state.rows_retired == ref.state.rows_retired


def timed_rows(b: int) -> str:
    """Rows whose eventTime is minute `b` (so each segment has its own time bounds)."""
    return rows(b, ROWS, event_time=f"2026-11-28T03:{b:02d}:00.000000Z")


def timed_batch(b: int) -> str:
    return HEADER_LINE.decode() + timed_rows(b)


def test_queries_skip_segments_by_their_time_bounds(tmp_path):
    settings = settings_of(tmp_path)
    for b in range(N_BATCHES):
        write_batch(settings.rows_dir, b, timed_batch(b))
    engine = MergeEngine(settings)
    engine.run_pass()
    state = engine.state
    engine.close()
    since = datetime(2026, 11, 28, 3, N_BATCHES - 1, tzinfo=UTC)
    read = query_sources(state, settings.merger_dir, RowQuery(since=since))
    assert [p for p, _ in read] == [state.active.path(settings.merger_dir)]  # the others skipped whole
    assert len(query_sources(state, settings.merger_dir, RowQuery())) == len(state.retained)


@pytest.mark.integration  # (the real merger process)
def test_http_serves_the_retained_segments_as_one_file(merger_runner, rows_dir):
    env = {"MERGER_SEGMENT_BYTES": "2048", "MERGER_MAX_GROUP_BATCHES": "1", "MERGER_RETAIN_BYTES": "3000"}
    settings = MergerSettings(data_dir=merger_runner.data_dir)
    with merger_runner.process(**env) as proc:
        url, logs = merger_runner.url, [proc.log_file]
        for b in range(N_BATCHES):
            write_batch(rows_dir, b, timed_batch(b))
        wait_for(lambda: merger_status(url).rows_merged == N_BATCHES * ROWS, 60, "every batch merged", logs=logs)
        st = merger_status(url)
        state = MergerState.from_json(orjson.loads(settings.state_file.read_bytes()))
        assert st.rows_retired == state.rows_retired > 0 and st.segments == len(state.retained) > 1
        assert st.segments_retired == state.segments_retired and st.bytes_retired == state.bytes_retired

        body = httpx.get(f"{url}/merged.csv")
        assert body.status_code == 200 and body.content == retained_bytes(settings, state)
        assert int(body.headers["content-length"]) == st.file_size == len(body.content)
        assert httpx.get(f"{url}/merged.csv", headers={"If-None-Match": body.headers["etag"]}).status_code == 304
        # A range across the boundary of the first two retained segments.
        boundary = state.segments[0].size
        part = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={boundary - 10}-{boundary + 9}"})
        assert part.status_code == 206 and part.content == body.content[boundary - 10 : boundary + 10]
        head = httpx.head(f"{url}/merged.csv")
        assert head.headers["content-length"] == str(len(body.content)) and head.headers["etag"] == body.headers["etag"]

        # A filtered answer reads the segments its time bounds may hold.
        last = httpx.get(f"{url}/merged.csv", params={"since": f"2026-11-28T03:{N_BATCHES - 1:02d}:00Z"})
        assert last.status_code == 200
        assert last.text.splitlines()[1:] == timed_rows(N_BATCHES - 1).splitlines()
        every = httpx.get(f"{url}/merged.csv", params={"columns": "eventId"})
        assert len(every.text.splitlines()) - 1 == N_BATCHES * ROWS - state.rows_retired

        assert devices_of(url).rows_retired == state.rows_retired
        wait_for(
            lambda: devices_of(url).covered_size == state.merged_size,
            30,
            "device figures caught up across segments",
            logs=logs,
        )
        seen = devices_of(url).rows  # (rows retired before it read them: skipped)
        assert N_BATCHES * ROWS - state.rows_retired <= seen <= N_BATCHES * ROWS


def test_a_full_disk_at_a_rollover_keeps_the_old_state_and_retries(tmp_path, monkeypatch):
    settings = settings_of(tmp_path)
    write_all(settings)
    engine = MergeEngine(settings)

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(commit_module, "atomic_write_bytes", no_space)
        with pytest.raises(CommitWriteError) as e:
            engine.run_pass()
    assert e.value.step == "rollover" and engine.state.active.seq == 0 and not engine.state.segments
    kept = engine.state.rows_merged  # merged up to the first rollover, nothing past it
    assert settings.merged_csv.read_bytes() == all_rows()[: engine.state.committed_size]
    assert kept and not list((settings.merger_dir / "segments").glob("*.csv"))
    engine.run_pass()  # space is back
    state = engine.state
    engine.close()
    assert retained_bytes(settings, state) == all_rows() and len(state.segments) >= 3


def test_a_journal_line_longer_than_the_tail_read_is_found(tmp_path):
    """Many segments make a long journal line: the tail read grows until it holds a whole line."""
    many = tuple(
        Segment(seq=i, file=segment_file(i), start=i * 100, size=200, rows=1, offsets={0: (i, i), 1: (i, i)})
        for i in range(1, 600)
    )
    state = replace(MergerState.fresh(), segments=many, commit_seq=7)
    path = tmp_path / "journal.jsonl"
    line = journal_line(state)
    assert len(line) > JOURNAL_TAIL_BYTES
    path.write_bytes(journal_line(replace(state, commit_seq=6)) + line)
    loaded = load_journal(path)
    assert loaded is not None and loaded.commit_seq == 7 and loaded.segments == many
