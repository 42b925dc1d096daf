"""A batch far bigger than the merger's byte budget (records of ~1 MB of empty readings make tens of
thousands of rows each): committed in row-bounded chunks, its peak memory bounded, merged.csv and
rejects.csv byte for byte (CR/LF inside quoted fields included), records already merged dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.csv import REJECT_HEADER, batch_file_name
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
from services.merger.state import HEADER_LINE, REJECTS_HEADER_LINE
from tests.helpers import REPO_ROOT
from tests.merger.batches import LINEAGE_A, LINEAGE_B, write_batch, write_keyed_batch

ROWS_PER_RECORD = 30_000  # what a ~100 KB value of empty readings ({}) makes; 1 MB makes ~330,000
BUDGET = 1024 * 1024

#: Runs one merge pass in a fresh process and prints its peak RSS (KiB: VmHWM, which starts afresh at
#: exec; ru_maxrss would carry the parent's size over) and the rows merged.
_PASS = """
import json, re, sys
from pathlib import Path
from services.merger.merge import MergeEngine
from services.merger.settings import MergerSettings
engine = MergeEngine(MergerSettings(data_dir=Path(sys.argv[1]), file_budget_bytes=int(sys.argv[2])))
engine.run_pass()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"maxrss_kib": peak, "rows": engine.state.rows_merged}))
"""


def _record_rows(offset: int, keyed: bool = False) -> str:
    """The merged.csv rows of one record of empty readings (every 7th record's customerId holds a
    CR/LF inside its quotes, as a valid value may); `keyed`: as the batch file holds them."""
    customer = '"CI\r\n1"' if offset % 7 == 3 else "CI00100"
    key = f"0,{offset}," if keyed else ""
    return "".join(
        f"{key}e-{offset},{10**9 + offset},device,{customer},2026-11-28T03:33:11.123456Z,{i},,,,\n"
        for i in range(ROWS_PER_RECORD)
    )


def _merge_pass(data_dir: Path) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", _PASS, str(data_dir), str(BUDGET)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.integration  # a merge pass in its own process (its peak RSS is the measure)
def test_a_batch_far_over_the_byte_budget_is_merged_in_chunks_with_bounded_memory(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    # the baseline: a process that merges a tiny batch
    settings = MergerSettings(data_dir=small)
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 2)})
    baseline = _merge_pass(small)["maxrss_kib"]

    # A first batch merges records 0..2; the big one replays them (dropped) and adds 3..39.
    settings = MergerSettings(data_dir=big)
    first = "".join(_record_rows(o, keyed=True) for o in range(3))
    write_keyed_batch(settings.rows_dir, LINEAGE_A, 0, {0: (0, 3)}, rows=first)
    _merge_pass(big)
    records = range(0, 40)
    rows = "".join(_record_rows(o, keyed=True) for o in records)
    write_keyed_batch(settings.rows_dir, LINEAGE_B, 1, {0: (0, 41)}, rows=rows)
    rejected = f'1,0,40,not JSON,"{{bad\r\n{"x" * 200_000}"\n'
    rejects = REJECT_HEADER + "\n" + "".join(f'1,0,{o},not JSON,"{{""x"":\r\n{o}"\n' for o in range(3)) + rejected
    write_batch(settings.rejects_dir, 1, rejects, name=batch_file_name(1, LINEAGE_B))
    size = (settings.rows_dir / batch_file_name(1, LINEAGE_B)).stat().st_size
    assert size > 50 * BUDGET
    del rows

    peak = _merge_pass(big)["maxrss_kib"]
    growth = (peak - baseline) * 1024
    assert growth < size / 2, f"peak RSS grew by {growth / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB batch"
    expected = HEADER_LINE + "".join(_record_rows(o) for o in records).encode()
    assert settings.merged_csv.read_bytes() == expected
    assert settings.merged_rejects.read_bytes() == REJECTS_HEADER_LINE + rejected.encode()
    assert not list(settings.rows_dir.iterdir()) and not list(settings.rejects_dir.iterdir())


def test_a_legacy_batch_over_the_byte_budget_is_merged_not_quarantined(tmp_path: Path) -> None:
    """A batch of the job before manifests (legacy name, no Kafka columns) bigger than the budget
    takes the streamed path like any big batch: its rows are appended as they are, as a small
    legacy batch's are (it was quarantined as "a batch with a manifest has no Kafka columns")."""
    settings = MergerSettings(data_dir=tmp_path, file_budget_bytes=64 * 1024)
    rows = "".join(_record_rows(o) for o in range(4))
    write_batch(settings.rows_dir, 0, HEADER_LINE.decode() + rows)
    assert (settings.rows_dir / batch_file_name(0)).stat().st_size > 10 * 64 * 1024
    engine = MergeEngine(settings)
    engine.run_pass()
    assert not engine.state.quarantined, engine.state.quarantined
    assert settings.merged_csv.read_bytes() == HEADER_LINE + rows.encode()
