"""Keeps the segments bench stage working at a tiny size (the real sizes run only with `make bench`)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Config
from bench.stage_segments import SegmentSizes, run

TINY = SegmentSizes(
    small_rows=20_000, large_rows=60_000, build_batch_rows=5_000, segment_bytes=256 * 1024, append_rows=500, reps=2
)


def test_segments_stage_tiny(tmp_path: Path) -> None:
    res = run(Config(quick=True, out=tmp_path), TINY)
    assert res.error is None and len(res.figures) == 3
    for f in res.figures:
        assert f.value.median > 0 and f.baseline is not None and f.baseline.median > 0, f.name
        f.to_json()  # verdict computable
    large = res.figures[0].sizes["large"]
    assert large["rows"] >= 60_000 and large["segments"] > 2 and 0 < large["parquet_bytes"] < large["csv_bytes"]
