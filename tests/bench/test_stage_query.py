"""Keeps the query bench stage working at a tiny size (the real sizes run only with `make bench`)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Config
from bench.stage_query import QuerySizes, run

TINY = QuerySizes(rows=3_000, chunk_rows=1_000, reps=1, device_batch_rows=500, device_reps=3)


def test_query_stage_tiny(tmp_path: Path) -> None:
    res = run(Config(quick=True, out=tmp_path), TINY)
    assert res.error is None
    assert len(res.figures) == 5
    for f in res.figures:
        assert f.value.median > 0 and f.baseline is not None and f.baseline.median > 0, f.name
        f.to_json()  # verdict computable
    query = res.figures[0]
    assert query.sizes["answer_bytes"] > len("eventTime,deviceId,temperature\n")
