"""A full disk at each write of the merger's commit, for real: the merger's folder on a small tmpfs,
filled by a filler file so that the next write fails at the rows append, the rejects append, the
journal line or state.json. Each time nothing is deleted, /merger/status (`write_blocked`) and the
gateway's /status say "disk full" naming the folder; once the filler is removed the merge completes
by itself and `devicestream verify` exits 0 (the real merger and gateway processes, real batch files
of records a real Kafka topic holds; tests/e2e/test_scenarios.py test_9 does it through real Spark).

tmpfs counts whole pages, so the free pages left decide which write is the first to need one: the
commit is the merger's first (merged.csv and rejects.csv hold their header, the journal is empty)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract.csv import REJECT_HEADER, ROW_HEADER, batch_file_name, manifest_file_name
from contract.files import TEMP_PATTERN
from contract.pipeline_status import PipelineStatus
from devicestream.verify import expected_rows
from tests.documents import merger_status
from tests.events import device_event
from tests.gateway.real_merger import start_merger_and_gateway
from tests.helpers import REPO_ROOT, produce, wait_for
from tests.merger.batches import LINEAGE_A, write_batch, write_keyed_batch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root to mount a size-limited tmpfs (mount -t tmpfs) for the merger's folder"
    ),
]

PAGE = 4096
VALID, INVALID = 160, 90  # rows of about 16 KiB, reject lines of about 12 KiB: several pages each


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        deadline = time.monotonic() + 30
        while subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
                break
            time.sleep(0.2)


def free_pages(folder: Path) -> int:
    return os.statvfs(folder).f_bavail


def fill(folder: Path, leave_pages: int) -> Path:
    """A filler file taking every free page of `folder`'s tmpfs but `leave_pages`."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        f.write(b"\0" * (free_pages(folder) - leave_pages) * PAGE)
    assert free_pages(folder) == leave_pages
    return filler


def pages(n: int) -> int:
    return math.ceil(n / PAGE)


def event(offset: int) -> bytes:
    reading = {"deviceId": f"D{offset % 7:03d}", "temperature": offset % 31, "measure": "C"}
    return device_event(f"disk-{offset:05d}", 7 * 10**12 + offset, [reading])


def records() -> list[bytes]:
    """VALID events, then INVALID records (not JSON), all in partition 0 from offset 0."""
    return [event(o) for o in range(VALID)] + [b"not JSON " + b"x" * 100 + str(o).encode() for o in range(INVALID)]


def batch_of(values: list[bytes], rows_dir: Path, rejects_dir: Path) -> tuple[int, int, list[Path]]:
    """The job's batch 0 of those records (rows file, manifest, reject file), as the job writes them.
    Returns the bytes the commit appends to merged.csv and to rejects.csv, and the files."""
    rows, rejects = io.StringIO(), io.StringIO()
    rows_w, rejects_w = csv.writer(rows, lineterminator="\n"), csv.writer(rejects, lineterminator="\n")
    merged_bytes = 0
    for offset, value in enumerate(values):
        try:
            for r in expected_rows(value):
                line = io.StringIO()
                csv.writer(line, lineterminator="\n").writerow(r)
                merged_bytes += len(line.getvalue().encode())
                rows_w.writerow([0, offset, *r])
        except Exception:  # verify's Invalid: the job rejects it
            rejects_w.writerow([0, 0, offset, "not JSON", value.decode()])
    name = batch_file_name(0, LINEAGE_A)
    reject_file = write_batch(rejects_dir, 0, f"{REJECT_HEADER}\n{rejects.getvalue()}", name=name)
    rows_file = write_keyed_batch(rows_dir, LINEAGE_A, 0, {0: (0, len(values))}, topic="t", rows=rows.getvalue())
    manifest = rows_dir / manifest_file_name(name)
    return merged_bytes, len(rejects.getvalue().encode()), [rows_file, manifest, reject_file]


def gateway_status(url: str) -> PipelineStatus:
    return PipelineStatus.model_validate_json(httpx.get(f"{url}/status", timeout=30).content)


def verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devicestream", "verify", "--wait", "60"],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("point", ["rows", "rejects", "journal", "state"])
def test_a_full_disk_at_each_write_of_the_commit_loses_nothing(point: str, kafka, tmp_path: Path) -> None:
    topic = kafka.new_topic(partitions=1, prefix="diskfull")
    values = records()
    produce(kafka.bootstrap, topic, values)
    merger_dir = tmp_path / "data" / "merger"
    with tmpfs(merger_dir, 1024):
        served = start_merger_and_gateway(
            tmp_path,
            MERGER_RETRY_BACKOFF_MAX_S="1",
            MERGER_DEVICES_SNAPSHOT_INTERVAL_S="3600",  # no devices.json write takes a page meanwhile
            MERGER_GAP_TIMEOUT_S="0.5",
        )
        logs = served.logs()
        try:
            # The merger's files before its first commit: merged.csv and rejects.csv hold one page
            # each (their header), the journal none. Leave the pages the writes before `point` need.
            stage = tmp_path / "stage"
            rows_bytes, rejects_bytes, staged = batch_of(values, stage / "rows", stage / "rejects")
            rejects_dir = tmp_path / "data" / "spark" / "rejects"
            rejects_dir.mkdir(parents=True, exist_ok=True)
            files = [served.rows_dir / staged[0].name, served.rows_dir / staged[1].name, rejects_dir / staged[2].name]
            header_rows, header_rejects = len(ROW_HEADER) + 1, len(REJECT_HEADER) + 1
            rows_pages = pages(header_rows + rows_bytes) - pages(header_rows)
            rejects_pages = pages(header_rejects + rejects_bytes) - pages(header_rejects)
            assert rows_pages >= 2 and rejects_pages >= 2
            leave = {
                "rows": rows_pages - 1,
                "rejects": rows_pages + rejects_pages - 1,
                "journal": rows_pages + rejects_pages,  # a journal line needs one page (< 4 KiB)
                "state": rows_pages + rejects_pages + 1,
            }[point]
            # The batch's files (outside the tmpfs) come once the disk is full: the first commit meets it.
            filler = fill(merger_dir, leave)
            for i in (2, 1, 0):  # reject file and manifest first, as the job writes them
                staged[i].rename(files[i])

            def blocked():
                w = merger_status(served.merger_url).write_blocked
                return w if w is not None and w.attempts >= 2 else None  # retried at least once

            w = wait_for(blocked, 60, f"the merger to report the full disk at {point}", logs=logs)
            assert (w.condition, w.folder, w.step, w.errno) == ("disk full", str(merger_dir), point, 28)
            st = merger_status(served.merger_url)
            assert "No space left" in (st.last_error or "")
            # Nothing deleted; the state is the old one, or (state.json) the journal's.
            assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
            assert st.last_batch_id == (0 if point == "state" else None)
            if point != "state":
                assert (merger_dir / "merged.csv").read_bytes() == (ROW_HEADER + "\n").encode()
            doc = gateway_status(served.url)
            merger = doc.components.merger
            assert merger.status == "down" and doc.overall == "down"
            assert any(f"disk full in {merger_dir}" in r for r in merger.reasons), merger.reasons
            metrics = httpx.get(f"{served.merger_url}/metrics", timeout=10).text
            assert "merger_disk_full 1.0" in metrics
            ready = httpx.get(f"{served.merger_url}/readyz", timeout=10)
            assert ready.status_code == 200 and "disk full" in ready.json()["notes"][0]  # no restart loop

            filler.unlink()  # space is back: the merge completes by itself
            wait_for(
                lambda: (s := merger_status(served.merger_url)).last_batch_id == 0 and s.write_blocked is None,
                60,
                "the merge to resume after space is freed",
                logs=logs,
            )
            wait_for(lambda: not any(f.exists() for f in files), 30, "the merged batch's files deleted", logs=logs)
            st = merger_status(served.merger_url)
            assert (st.rows_merged, st.last_error, st.quarantined) == (VALID, None, [])
            assert "merger_disk_full 0.0" in httpx.get(f"{served.merger_url}/metrics", timeout=10).text
            assert not [p for p in merger_dir.rglob("*") if TEMP_PATTERN.match(p.name)]
            res = verify(
                {
                    "DEVICESTREAM_DATA_DIR": str(tmp_path / "data"),
                    "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
                    "KAFKA_TOPIC": topic,
                }
            )
            assert res.returncode == 0, res.stdout + res.stderr
        finally:
            served.stop_all()
