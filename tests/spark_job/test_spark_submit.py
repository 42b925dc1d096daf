"""The job as a real `spark-submit` process: readiness, SIGKILL mid-run + restart (exactly the
expected rows, none twice), SIGTERM -> graceful stop with exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.layout import DataLayout
from contract.progress import SparkProgress, read_progress
from devicestream.processes import kill_process, log_tail, start_in_own_group, stop_process
from tests.conftest import Broker
from tests.helpers import REPO_ROOT, wait_for
from tests.spark_job.conftest import connector_jars
from tests.spark_job.events import committed_files, event_records, expected_rows, make_events, produce, read_all
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration

JOB = REPO_ROOT / "spark_job" / "job.py"


class SparkSubmitJob:
    """`spark-submit --master local[2] --jars <connector jars> spark_job/job.py` in its own process group."""

    def __init__(self, data_dir: Path, bootstrap: str, topic: str, log_file: Path) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.env = {
            **os.environ,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "DEVICESTREAM_DATA_DIR": str(data_dir),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC": topic,
            "SPARK_MASTER": "local[2]",
            "SPARK_JOB_TRIGGER_INTERVAL": "0",
            "SPARK_JOB_MAX_OFFSETS_PER_TRIGGER": "150",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0

    @property
    def progress(self) -> SparkProgress:
        doc = read_progress(DataLayout(self.data_dir).spark_progress)
        assert doc is not None, "no progress.json yet"
        return doc

    def start(self) -> None:
        self.launched_at = time.time()
        cmd = [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master", "local[2]",
            "--driver-memory", "512m",
            "--jars", connector_jars(),
            "--conf", "spark.ui.enabled=false",
            str(JOB),
        ]  # fmt: skip
        self.proc = start_in_own_group(cmd, self.log_file, env=self.env, cwd=REPO_ROOT)

    def wait_running(self, timeout: float = 120) -> None:
        def running() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"spark-submit exited with {self.proc.returncode}:\n{log_tail(self.log_file)}")
            p = read_progress(DataLayout(self.data_dir).spark_progress)
            return p is not None and p.state == "running" and (p.started_at or 0) >= self.launched_at

        wait_for(running, timeout, "the job's progress.json state running", logs=[self.log_file], interval=0.2)

    def kill(self) -> None:
        if self.proc is not None:
            kill_process(self.proc, timeout_s=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (the driver stops the query after its batch); SIGKILL after `timeout`."""
        assert self.proc is not None
        return stop_process(self.proc, timeout)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)


@pytest.fixture
@starts_processes
def job_factory(tmp_path: Path) -> Iterator[list[SparkSubmitJob]]:
    jobs: list[SparkSubmitJob] = []
    try:
        yield jobs
    finally:
        for j in jobs:
            j.stop()


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_gives_exactly_the_expected_rows(
    kafka: Broker, tmp_path: Path, job_factory: list[SparkSubmitJob]
) -> None:
    topic = kafka.new_topic(partitions=3)
    events = make_events(seed=21, count=3000)
    produce(kafka.bootstrap, topic, event_records(events[:2400]))
    log_file = tmp_path / "spark-job.log"
    expected = expected_rows(events)
    rows_dir = tmp_path / "spark" / "rows"

    first = SparkSubmitJob(tmp_path, kafka.bootstrap, topic, log_file)
    job_factory.append(first)
    first.start()
    first.wait_running()
    wait_for(lambda: len(committed_files(rows_dir)) >= 3, 120, "3 committed batches", logs=[log_file])
    first.kill()  # mid-run: 2400 events at 150 per batch is 16 batches
    assert len(committed_files(rows_dir)) < 16, "the job finished before it was killed"

    produce(kafka.bootstrap, topic, event_records(events[2400:]))
    second = SparkSubmitJob(tmp_path, kafka.bootstrap, topic, log_file)
    # A changed limit after a restart: the planned batch is replayed with its logged offsets, the
    # next ones take the new limit (and the test takes a few batches, not a dozen).
    second.env["SPARK_JOB_MAX_OFFSETS_PER_TRIGGER"] = "1000"
    job_factory.append(second)
    second.start()
    second.wait_running()
    wait_for(lambda: len(read_all(rows_dir)) >= len(expected), 180, "every expected row", logs=[log_file])
    wait_for(lambda: second.progress.offsets_behind_latest == 0, 60, "the job to catch up", logs=[log_file])

    got = [r[2:] for r in read_all(rows_dir)]  # (without the Kafka columns)
    assert len(got) == len(set(got)), "a row was written twice"
    assert len({p.name.rsplit("-", 1)[0] for p in committed_files(rows_dir).values()}) == 1, "one lineage"
    assert sorted(got) == expected
    assert list(committed_files(rows_dir)) == list(range(len(committed_files(rows_dir))))

    assert second.terminate() == 0, log_tail(log_file)
    doc = second.progress
    assert doc.state == "stopped"
    assert doc.totals.rows_out == len(expected)
    assert doc.totals.input_rows == len(events)
