"""The end-to-end stage's phase breakdown (bench/e2e_phases.py) and the cost-as-work-grows table, on
made-up sources: pure bookkeeping, no stack."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench import report
from bench.common import GROWTH_FLAT, growth_figure
from bench.e2e_phases import committed_at, journal_commits, row_phases, row_phases_text
from services.merger.journal import journal_line
from services.merger.state import MergerState


def _journal(path: Path, lines: list[tuple[int, int | None, float | None]]) -> Path:
    """journal.jsonl lines as the merger writes them, with (rows_merged, last_batch_id, last_merge_at)
    set (what the breakdown reads), then a torn line."""
    path.write_bytes(
        b"".join(
            journal_line(MergerState(generation="g", rows_merged=r, last_batch_id=b, last_merge_at=at))
            for r, b, at in lines
        )
        + b'{"torn'
    )
    return path


def test_journal_commits_keep_the_commits_that_merged_rows(tmp_path: Path) -> None:
    j = _journal(tmp_path / "journal.jsonl", [(0, None, None), (3, 0, 10.0), (3, 1, 10.5), (7, 3, 11.0)])
    cum, first, last, at = journal_commits(j)
    assert cum.tolist() == [3, 7]
    assert first.tolist() == [0, 2] and last.tolist() == [0, 3]  # batch 1 was empty: its commit merged no row
    assert at.tolist() == [10.0, 11.0]


def test_committed_at_reads_the_sink_log_lines_with_milliseconds(tmp_path: Path) -> None:
    (tmp_path / "spark.log").write_text(
        "2026-12-03 07:01:02,123 INFO spark spark_job.sink: batch committed batch_id=4 lineage=x input_rows=3\n"
        "2026-12-03 07:01:02,500 INFO spark spark_job.sink: something else batch_id=5\n"
    )
    (tmp_path / "spark.log.1").write_text(
        "2026-12-03 07:01:01,007 INFO spark spark_job.sink: batch committed batch_id=3 lineage=x input_rows=1\n"
    )
    found = committed_at(tmp_path)
    base = time.mktime(time.strptime("2026-12-03 07:01:02", "%Y-%m-%d %H:%M:%S"))
    assert found == {4: pytest.approx(base + 0.123), 3: pytest.approx(base - 1 + 0.007)}


def test_row_phases_add_up_to_the_freshness(tmp_path: Path) -> None:
    # Two batches: 0 starts at 100.0, committed at 100.2, merged from 100.25; 1 starts at 100.3,
    # committed at 100.5, merged from 100.52. The bench sees batch 0's 2 rows at 100.3, batch 1's 2 at 100.6.
    progress = [{"batchId": 0, "start_s": 100.0}, {"batchId": 1, "start_s": 100.3}]
    committed = {0: 100.2, 1: 100.5}
    journal = _journal(tmp_path / "j.jsonl", [(2, 0, 100.25), (4, 1, 100.52)])
    events = np.array([99.9, 99.95, 100.1, 100.2])
    kept = [(100.3, 0, 100.3 - events[:2]), (100.6, 2, 100.6 - events[2:])]
    ph = row_phases(kept, progress, committed, journal, 0.0, 1e9)
    assert ph["rows"] == 4 and ph["rows_unmatched"] == 0
    mean = ph["mean_s"]
    assert mean["wait"] == pytest.approx(np.mean([0.1, 0.05, 0.2, 0.1]))
    assert mean["spark"] == pytest.approx(0.2)
    assert mean["pickup"] == pytest.approx(np.mean([0.05, 0.05, 0.02, 0.02]))
    assert mean["merge"] == pytest.approx(np.mean([0.05, 0.05, 0.08, 0.08]))
    assert sum(mean.values()) == pytest.approx(ph["freshness_mean_s"])
    assert ph["rows_in_multi_batch_commits"] == 0
    assert "wait 100" in row_phases_text(1000, ph)


def test_row_phases_without_sources_say_so(tmp_path: Path) -> None:
    assert row_phases([(1.0, 0, np.array([0.1]))], [], {}, tmp_path / "missing.jsonl", 0, 10) == {}
    assert "not available" in row_phases_text(1000, {})


def test_growth_rows_in_the_report(tmp_path: Path) -> None:
    flat = growth_figure("merger", "catch-up", 1000, [2.0, 2.2], 4000, [2.1], ["n"])
    grows = growth_figure("spark", "backlog", 10, [1.0], 40, [GROWTH_FLAT * 2], [])
    assert flat.met and flat.ratio == pytest.approx(2.1 / 2.1)
    assert not grows.met
    lines = report.growth_table([flat, grows])
    assert any("| merger | catch-up | 1,000 |" in line and "flat" in line for line in lines)
    assert any("| spark | backlog |" in line and "GROWS" in line for line in lines)
