"""Compaction of closed segments to Parquet (services.merger.compaction), on real files: the copy
renders back to the CSV byte for byte, every reader sees every retained row once with the CSV
removed, and a crash at any point of a compaction loses and duplicates nothing."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest

from contract.compacted import PARQUET_SCHEMA, render_csv, typed
from contract.segments import parquet_file
from devicestream.merged_files import merged_files
from services.merger.compacted import open_part, open_segment
from services.merger.compaction import CompactionStopped, compact_segment, rendered_groups, temp_of
from services.merger.device_tracker import read_merged_lines
from services.merger.errors import QueryFailedError
from services.merger.merge import MergeEngine
from services.merger.query import EVENT_TIME_TYPE, TEXT_SCHEMA, TYPED_SCHEMA, build_query, pin_sources, run_query
from services.merger.query_api import QueryService, query_sources
from services.merger.segments import stream_parts
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE, MergerState
from tests.documents import devices as devices_of
from tests.documents import merger_status
from tests.helpers import wait_for
from tests.merger.batches import batch_rows, write_batch
from tests.merger.test_segments import N_BATCHES

ROWS = 9


def settings_of(data_dir: Path, **overrides: object) -> MergerSettings:
    values: dict[str, object] = {"segment_bytes": 2048, "max_group_batches": 1, **overrides}
    return MergerSettings(data_dir=data_dir, **values)  # type: ignore[arg-type]


def batch(b: int) -> str:
    return HEADER_LINE.decode() + batch_rows(b, ROWS, random.Random(b))


def expected_stream() -> bytes:
    return HEADER_LINE + "".join(batch(b)[len(HEADER_LINE) :] for b in range(N_BATCHES)).encode()


def served(settings: MergerSettings, state: MergerState) -> bytes:
    """GET /merged.csv's bytes: the parts as the route opens and reads them."""
    out = []
    for part in stream_parts(state, settings.merger_dir):
        with open_part(part) as f:  # (the route's opener)
            f.seek(part.offset)
            out.append(f.read(part.length))
    return b"".join(out)


def compacted(engine: MergeEngine) -> bool:
    engine.run_pass()
    return all(g.parquet is not None for g in engine.state.segments)


def merge_and_compact(settings: MergerSettings) -> MergeEngine:
    for b in range(N_BATCHES):
        write_batch(settings.rows_dir, b, batch(b))
    engine = MergeEngine(settings)
    wait_for(lambda: compacted(engine), 60, "every closed segment compacted")
    return engine


def test_render_is_the_csv_byte_for_byte_and_the_types_are_the_exports():
    text = batch(3)[len(HEADER_LINE) :].encode() + b'x,1,a,"q,""z",2026-11-28T03:00:00.000001Z,0,"",7,C,\n'
    rows = typed(pl.read_csv(text, has_header=False, schema=TEXT_SCHEMA).lazy()).collect()
    assert rows.schema == PARQUET_SCHEMA and render_csv(rows) == text
    # The merger's merged.parquet answers have the same types.
    assert pl.Schema({**TYPED_SCHEMA, "eventTime": EVENT_TIME_TYPE}) == PARQUET_SCHEMA


def test_compaction_with_the_csv_removed_keeps_every_reader_right(tmp_path):
    settings = settings_of(tmp_path, keep_segment_csv=False)
    engine = merge_and_compact(settings)
    state = engine.state
    closed = state.segments
    assert len(closed) >= 3
    for g in closed:
        assert not g.path(settings.merger_dir).exists() and (settings.merger_dir / g.parquet).is_file()
        assert sum(g.group_bytes) == g.size - len(HEADER_LINE)
    # GET /merged.csv: the same bytes (so the same length and ETag) as before compaction.
    assert served(settings, state) == expected_stream()
    # A range from the middle of a compacted segment.
    g = closed[1]
    with open_segment(g, settings.merger_dir) as f:
        assert f.pread(100, len(HEADER_LINE) + 50) == expected_stream()[g.start + 50 :][:100]
        assert f.pread(10**6, 0) == HEADER_LINE + expected_stream()[g.start : g.start + g.size - len(HEADER_LINE)]
    # The device figures' reads across segments.
    read = b"".join(d for _, d in read_merged_lines(state, settings.merger_dir, len(HEADER_LINE), state.merged_size))
    assert HEADER_LINE + read == expected_stream()
    # Queries read the Parquet copies; CSV and Parquet answers equal the rows as merged.
    sources = query_sources(state, settings.merger_dir, build_query())
    assert [p.suffix for p, _ in sources] == [".parquet"] * len(closed) + [".csv"]
    out = tmp_path / "a.csv"
    run_query(sources, build_query(), "csv", out)
    assert out.read_bytes() == expected_stream()
    since = datetime(2026, 11, 28, 3, 0, 30, tzinfo=UTC)
    run_query(sources, build_query(since=since, statuses=["ERROR"], columns=["eventId"]), "parquet", out)
    whole = pl.read_csv(expected_stream(), schema=TEXT_SCHEMA)
    want = whole.filter((pl.col("eventTime") >= "2026-11-28T03:00:30") & (pl.col("status") == "ERROR"))["eventId"]
    assert pl.read_parquet(out)["eventId"].to_list() == want.to_list()
    # verify's reader: every row once, as text.
    text = merged_files(settings.merged_csv).scan_text().collect()
    assert text.equals(whole)
    engine.close()
    # A restart finds it as it was (nothing removed, nothing compacted again).
    again = MergeEngine(settings)
    assert again.state.segments == state.segments
    again.close()


def test_retention_removes_both_files(tmp_path):
    settings = settings_of(tmp_path)
    engine = merge_and_compact(settings)
    engine.close()
    settings = settings_of(tmp_path, retain_bytes=3000)
    engine = MergeEngine(settings)
    engine.run_pass()
    state = engine.state
    engine.close()
    assert state.segments_retired > 0
    names = {p.name for p in (settings.merger_dir / "segments").iterdir()}
    for g in state.retired:
        assert Path(g.file).name not in names and Path(parquet_file(g.seq)).name not in names


def test_a_query_reads_the_state_it_was_planned_on_whatever_removes_its_files(tmp_path):
    """Compaction removes a segment's CSV, retention whole segments, while queries read them: a
    query reads hard links made when it is planned (query.pin_sources), and one planned on a state
    whose file was removed just then plans again on the state that removed it."""
    settings = settings_of(tmp_path, keep_segment_csv=True)
    engine = merge_and_compact(settings)
    state = engine.state
    engine.close()
    q = build_query()
    # The state before compaction lists the CSVs: planned on it, then each CSV removed, the query
    # reads them whole.
    before = replace(state, segments=tuple(g.model_copy(update={"parquet": None}) for g in state.segments))
    pins = tmp_path / "pins"
    sources = pin_sources(query_sources(before, settings.merger_dir, q), pins)
    assert [p.parent for p, _ in sources] == [pins] * len(sources)
    for g in state.segments:
        g.path(settings.merger_dir).unlink()
    out = tmp_path / "a.csv"
    run_query(sources, q, "csv", out)
    assert out.read_bytes() == expected_stream()
    shutil.rmtree(pins)
    # Planned on that state now (its CSVs gone): planned again on the current one (the Parquet copies).
    first = iter([before])
    service = QueryService(settings, lambda: next(first, state))
    try:
        planned, sources = service._pinned(q, pins)
        assert planned is state and [p.suffix for p, _ in sources][:-1] == [".parquet"] * len(state.segments)
        run_query(sources, q, "csv", out)
        assert out.read_bytes() == expected_stream()
        # A file missing from the committed state itself (removed by hand): a clear error at once.
        shutil.rmtree(pins)
        service.state = lambda: before
        with pytest.raises(QueryFailedError, match=r"a file of the committed state is missing: .*merged"):
            service._pinned(q, pins)
        assert not pins.exists()
        # Each plan on a newer state whose files are gone again: a clear error after a few plans.
        service.state = lambda: replace(before)
        with pytest.raises(QueryFailedError, match="changed under each"):
            service._pinned(q, pins)
        assert not pins.exists()
        # No hard links here (the folder cannot be made): read in place.
        (tmp_path / "file").touch()
        service.state = lambda: state
        planned, sources = service._pinned(q, tmp_path / "file" / "pins")
        assert sources == query_sources(state, settings.merger_dir, q)
    finally:
        service.close()


def test_a_segment_that_does_not_render_back_keeps_its_csv(tmp_path):
    settings = settings_of(tmp_path)
    for b in range(N_BATCHES):  # a needless quote: the same value, other bytes
        write_batch(settings.rows_dir, b, batch(b).replace(",device,", ',"device",'))
    engine = MergeEngine(settings)
    engine.run_pass()
    g = engine.state.segments[0]
    engine.close()
    assert compact_segment(settings.merger_dir, g).group_bytes is None
    assert not any(p.suffix in (".parquet", ".tmp") for p in (settings.merger_dir / "segments").iterdir())


def test_a_stop_ends_a_running_compaction_and_leaves_nothing(tmp_path):
    """Closing the merger does not wait for a compaction: it gives up within a chunk, in polars'
    scan or in the render check, its temp file removed (the segment is compacted at the next start)."""
    settings = settings_of(tmp_path, compact_segments=False)
    for b in range(N_BATCHES):
        write_batch(settings.rows_dir, b, batch(b))
    engine = MergeEngine(settings)
    engine.run_pass()
    g = engine.state.segments[0]
    engine.close()
    stop = threading.Event()
    stop.set()
    with pytest.raises(CompactionStopped):
        compact_segment(settings.merger_dir, g, stop)
    assert not any(p.suffix in (".parquet", ".tmp") for p in (settings.merger_dir / "segments").iterdir())
    copy = tmp_path / "copy.parquet"
    compact_segment(settings.merger_dir, g)  # (unstopped: the copy, then the render check stopped)
    os.replace(settings.merger_dir / parquet_file(g.seq), copy)
    with pytest.raises(CompactionStopped):
        rendered_groups(copy, g.path(settings.merger_dir), g, stop)
    assert rendered_groups(copy, g.path(settings.merger_dir), g) is not None


CHILD = """
import os, signal, sys
from services.merger import compaction as cp
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from tests.documents import merger_status
from tests.helpers import wait_for

data_dir, point = sys.argv[1], sys.argv[2]
def kill(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)
real_groups, real_replace = cp.rendered_groups, cp.os.replace
if point == "temp_written":
    cp.rendered_groups = kill
elif point == "renamed":
    cp.fsync_dir = kill
elif point == "committed":  # the commit written, the CSV not removed yet
    real_publish = MergeEngine.publish_segments
    MergeEngine.publish_segments = lambda self: (
        kill() if any(g.parquet for g in self.state.segments) else real_publish(self)
    )
settings = MergerSettings(data_dir=data_dir, segment_bytes=2048, max_group_batches=1, keep_segment_csv=False)
engine = MergeEngine(settings)
wait_for(lambda: engine.run_pass() and all(g.parquet for g in engine.state.segments), 60, "compacted")
sys.exit(3)
"""


@pytest.mark.integration  # (a merger child process, SIGKILLed)
@pytest.mark.parametrize("point", ["temp_written", "renamed", "committed"])
def test_sigkill_during_compaction_loses_and_duplicates_nothing(tmp_path, point):
    settings = settings_of(tmp_path, keep_segment_csv=False)
    for b in range(N_BATCHES):
        write_batch(settings.rows_dir, b, batch(b))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run([sys.executable, "-c", CHILD, str(settings.data_dir), point], env=env, timeout=120)
    assert done.returncode == -9, f"not killed at {point}"
    segments = settings.merger_dir / "segments"
    left = {p.name for p in segments.iterdir()}
    killed = MergerState.from_json(orjson.loads(settings.state_file.read_bytes()))
    dropped = [Path(g.file).name for g in killed.segments if not g.csv_kept]
    if point == "temp_written":  # a half-done compaction: its temp file
        assert any(n.endswith(".parquet.tmp") for n in left), left
    elif point == "renamed":  # a copy in place that no commit names
        assert any(n.endswith(".parquet") and n.replace(".parquet", ".csv") not in dropped for n in left), left
    else:  # committed, the CSV not removed yet
        assert any(g.path(settings.merger_dir).exists() for g in killed.segments if not g.csv_kept), dropped
    engine = MergeEngine(settings)  # recovery: no temp file, no copy nor CSV the state does not list
    names = {p.name for p in segments.iterdir()}
    assert not any(n.endswith(".tmp") for n in names), left
    listed = {Path(g.rows_file).name for g in engine.state.retained if g.seq} | {
        Path(g.parquet).name for g in engine.state.segments if g.parquet
    }
    assert names == listed, (left, names)
    wait_for(lambda: compacted(engine), 60, "every closed segment compacted again")
    state = engine.state
    engine.close()
    assert state.rows_merged == N_BATCHES * ROWS == sum(g.rows for g in state.retained)
    assert served(settings, state) == expected_stream()
    assert all(not g.path(settings.merger_dir).exists() for g in state.segments)
    assert temp_of(settings.merger_dir / parquet_file(0)).exists() is False


@pytest.mark.integration  # (the real merger process)
def test_http_merged_csv_is_the_same_before_and_after_compaction(merger_runner, rows_dir):
    """The real merger: GET /merged.csv (rows, length, ETag, a range) and /devices are the same once
    the closed segments are compacted and their CSV removed."""
    env = {"MERGER_SEGMENT_BYTES": "2048", "MERGER_MAX_GROUP_BATCHES": "1", "MERGER_COMPACT_SEGMENTS": "false"}
    settings = MergerSettings(data_dir=merger_runner.data_dir)
    with merger_runner.process(**env) as proc:
        url, logs = merger_runner.url, [proc.log_file]
        for b in range(N_BATCHES):
            write_batch(rows_dir, b, batch(b))
        wait_for(lambda: merger_status(url).rows_merged == N_BATCHES * ROWS, 60, "every batch merged", logs=logs)
        before = httpx.get(f"{url}/merged.csv")
        # (the figures follow the commits a poll behind: taken once they cover every row; taken at
        # once, a loaded machine gave a lagging size that the recount never matched)
        before_devices = wait_for(
            lambda: (d := devices_of(url)).covered_size == d.committed_size and d,
            30,
            "device figures caught up",
            logs=logs,
        )
    assert before.content == expected_stream()
    assert not list((settings.merger_dir / "segments").glob("*.parquet"))
    (settings.merger_dir / "devices.json").unlink()  # the figures are counted again, from the Parquet copies

    env |= {"MERGER_COMPACT_SEGMENTS": "true", "MERGER_KEEP_SEGMENT_CSV": "false"}
    with merger_runner.process(**env) as proc:
        url, logs = merger_runner.url, [proc.log_file]

        def state() -> MergerState:
            return MergerState.from_json(orjson.loads(settings.state_file.read_bytes()))

        wait_for(lambda: all(g.parquet and not g.csv_kept for g in state().segments), 60, "compacted", logs=logs)
        assert all(not g.path(settings.merger_dir).exists() for g in state().segments)
        after = httpx.get(f"{url}/merged.csv")
        assert after.content == before.content and after.headers["etag"] == before.headers["etag"]
        # Row by row, the same values.
        assert pl.read_csv(after.content, schema=TEXT_SCHEMA).equals(pl.read_csv(before.content, schema=TEXT_SCHEMA))
        g = state().segments[1]
        part = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={g.start + 5}-{g.start + 300}"})
        assert part.status_code == 206 and part.content == before.content[g.start + 5 : g.start + 301]
        wait_for(
            lambda: devices_of(url).covered_size == before_devices.covered_size,
            30,
            "device figures counted again",
            logs=logs,
        )
        again = devices_of(url)
        assert again.rows == before_devices.rows == N_BATCHES * ROWS and again.devices == before_devices.devices
