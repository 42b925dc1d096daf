"""merged.csv in segments, end to end on real parts: records in a real Kafka topic, the job's batch
files of them, the real merger process rolling over every few commits and SIGKILLed again and again
while batches land (so kills fall before, in and after rollovers and retentions), then the real
`devicestream verify` exits 0: every record merged once, and with retention on, the rows of the
removed segments reported as retired, not missing."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from contract.csv import manifest_file_name
from contract.segments import SEGMENT_INDEX, SegmentIndex
from contract.verify_report import VerifyReport
from devicestream.verify import expected_rows
from tests.documents import merger_status
from tests.events import device_event
from tests.helpers import REPO_ROOT, produce, wait_for
from tests.merger.batches import LINEAGE_A, write_keyed_batch

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # (a broker, the merger, verify: real processes)

N_BATCHES, PER_BATCH = 30, 12  # about 1.3 KB a batch: a 4 KB segment closes every third commit


def event(offset: int) -> bytes:
    reading = {"deviceId": f"D{offset % 7:03d}", "temperature": offset % 31, "measure": "C"}
    event_time = f"2026-11-28T03:{offset // 60 % 60:02d}:{offset % 60:02d}.000000Z"
    return device_event(f"seg-{offset:05d}", 8 * 10**12 + offset, [reading], event_time=event_time)


def write_job_batch(rows_dir: Path, topic: str, b: int, values: list[bytes]) -> None:
    """Batch `b` of the job: records [b * PER_BATCH, (b + 1) * PER_BATCH) with their Kafka columns."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    start, end = b * PER_BATCH, (b + 1) * PER_BATCH
    for offset in range(start, end):
        for r in expected_rows(values[offset]):
            w.writerow([0, offset, *r])
    stage = rows_dir.parent / "stage"  # (written whole, then renamed in: the merger never sees half a file)
    rows_file = write_keyed_batch(stage, LINEAGE_A, b, {0: (start, end)}, topic=topic, rows=out.getvalue())
    manifest = stage / manifest_file_name(rows_file.name)
    manifest.rename(rows_dir / manifest.name)  # the manifest first, as the job does
    rows_file.rename(rows_dir / rows_file.name)


@pytest.mark.parametrize("retain", [False, True])
def test_sigkill_while_rolling_over_then_verify_exits_0(retain: bool, kafka, merger_runner, rows_dir) -> None:
    topic = kafka.new_topic(partitions=1, prefix="segments")
    values = [event(o) for o in range(N_BATCHES * PER_BATCH)]
    produce(kafka.bootstrap, topic, values)
    env = {"MERGER_SEGMENT_BYTES": "4096", "MERGER_MAX_GROUP_BATCHES": "1"}
    if retain:
        env["MERGER_RETAIN_BYTES"] = "10000"
    proc = merger_runner.process(**env).start()
    for b in range(N_BATCHES):
        write_job_batch(rows_dir, topic, b, values)
        if b % 4 == 3:  # no waiting: the kill lands wherever the merger is
            proc.kill()
            proc = merger_runner.process(**env).start()
    url = merger_runner.url
    total = N_BATCHES * PER_BATCH
    wait_for(lambda: merger_status(url).rows_merged == total, 90, "every batch merged", logs=[proc.log_file])
    st = merger_status(url)
    assert st.segments > 1 and (st.rows_retired > 0) == retain
    res = run_verify(merger_runner.data_dir, kafka.bootstrap, topic)
    assert res.returncode == 0, res.stdout + res.stderr
    report = VerifyReport.model_validate_json(res.stdout)
    assert report.rows_retired == st.rows_retired and report.rows_in_merged == total - st.rows_retired


def run_verify(data_dir: Path, bootstrap: str, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devicestream", "verify", "--wait", "60", "--json"],
        env={
            **os.environ,
            "DEVICESTREAM_DATA_DIR": str(data_dir),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC": topic,
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sigkill_while_compacting_with_the_csv_removed_then_verify_exits_0(kafka, merger_runner, rows_dir) -> None:
    """Segments compacted to Parquet in the background and their CSV removed, the merger SIGKILLed
    again and again while batches land (kills fall in compactions too); then every segment is
    compacted, filters read the Parquet copies, and verify reads them: exit 0."""
    topic = kafka.new_topic(partitions=1, prefix="compact")
    values = [event(o) for o in range(N_BATCHES * PER_BATCH)]
    produce(kafka.bootstrap, topic, values)
    env = {"MERGER_SEGMENT_BYTES": "4096", "MERGER_MAX_GROUP_BATCHES": "1", "MERGER_KEEP_SEGMENT_CSV": "false"}
    proc = merger_runner.process(**env).start()
    for b in range(N_BATCHES):
        write_job_batch(rows_dir, topic, b, values)
        if b % 3 == 2:
            proc.kill()
            proc = merger_runner.process(**env).start()
    url, total = merger_runner.url, N_BATCHES * PER_BATCH
    wait_for(lambda: merger_status(url).rows_merged == total, 90, "every batch merged", logs=[proc.log_file])
    merger_dir = merger_runner.data_dir / "merger"

    def index() -> SegmentIndex:
        return SegmentIndex.model_validate(orjson.loads((merger_dir / SEGMENT_INDEX).read_bytes()))

    wait_for(lambda: all(g.parquet for g in index().segments[:-1]), 60, "every closed segment compacted")
    closed = index().segments[:-1]
    assert len(closed) > 2 and all(not (merger_dir / g.file).exists() for g in closed)
    res = run_verify(merger_runner.data_dir, kafka.bootstrap, topic)
    assert res.returncode == 0, res.stdout + res.stderr
    assert VerifyReport.model_validate_json(res.stdout).rows_in_merged == total
    # The filters read the Parquet copies: the same rows as the whole file.
    whole = httpx.get(f"{url}/merged.csv", timeout=30)
    rows = whole.text.splitlines()
    assert len(rows) == total + 1 and len(set(rows)) == total + 1
    since = "2026-11-28T03:05:00Z"
    got = httpx.get(f"{url}/merged.csv", params={"since": since, "columns": "eventId"}, timeout=30)
    want = [r.split(",")[0] for r in rows[1:] if r.split(",")[4] >= since.replace("Z", "")]
    assert got.status_code == 200 and got.text.splitlines()[1:] == want
