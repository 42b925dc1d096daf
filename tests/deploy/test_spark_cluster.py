"""The Spark job runs unchanged on a Spark standalone cluster: a master and one worker started from the
pyspark distribution's own `spark-class` on 127.0.0.1, the launcher submitting the job to it with
SPARK_MASTER=spark://..., and `devicestream verify` finding every row exactly once.

On one machine the data folder is shared by construction: the executor writes each batch's part
file into it and the driver renames it into place, as it would on a shared volume in a real cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyspark
import pytest

from devicestream.processes import free_ports, log_tail, start_in_own_group, stop_process
from tests.deploy.conftest import LaunchStack
from tests.helpers import wait_for
from tests.tiers import starts_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
RATE, COUNT = 1000, 5000


@dataclass
class Standalone:
    """A standalone master and one worker, each a `spark-class` process (in its own process group)
    that this test owns."""

    master_port: int
    master_ui: int
    worker_ui: int
    work_dir: Path
    logs: Path
    procs: dict[str, subprocess.Popen]

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def master_json(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.master_ui}/json/", timeout=5).json()

    def worker_json(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.worker_ui}/json/", timeout=5).json()

    def log_files(self) -> list[Path]:
        return [self.logs / "master.log", self.logs / "worker.log"]

    def executor_logs(self) -> list[Path]:
        return sorted(self.work_dir.glob("app-*/*/stderr"))


def spark_env() -> dict[str, str]:
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "PYSPARK_PYTHON": sys.executable,
    }
    java_home = os.environ.get("JAVA_HOME") or "/usr/lib/jvm/java-17-openjdk-amd64"
    if Path(java_home, "bin", "java").exists():
        env["JAVA_HOME"] = java_home
    return env


def _start(name: str, args: list[str], logs: Path) -> subprocess.Popen:
    return start_in_own_group([str(SPARK_HOME / "bin" / "spark-class"), *args], logs / f"{name}.log", env=spark_env())


def _stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM the process group (the worker kills its executors on the way out), SIGKILL after the
    grace period; whatever is left of the group (an executor JVM) goes too."""
    stop_process(proc, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader while an executor is left


@pytest.fixture
@starts_processes
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    port, master_ui, worker_port, worker_ui = free_ports(4)
    c = Standalone(port, master_ui, worker_ui, tmp_path / "spark-work", tmp_path / "spark-logs", {})
    c.work_dir.mkdir()
    try:
        c.procs["master"] = _start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(master_ui)),
            ],
            c.logs,
        )
        wait_for(lambda: c.master_json()["status"] == "ALIVE", 120, "the Spark master", logs=c.log_files())
        c.procs["worker"] = _start(
            "worker",
            [
                "org.apache.spark.deploy.worker.Worker",
                c.url,
                *("--host", "127.0.0.1", "--port", str(worker_port), "--webui-port", str(worker_ui)),
                *("--cores", "1", "--memory", "1g", "--work-dir", str(c.work_dir)),
            ],
            c.logs,
        )
        wait_for(
            lambda: [w for w in c.master_json()["workers"] if w["state"] == "ALIVE"],
            120,
            "the worker registered with the master",
            logs=c.log_files(),
        )
        yield c
    finally:
        # The launch_stack fixture (requested after this one) has stopped the driver by now.
        for name in ("worker", "master"):
            if name in c.procs:
                _stop(c.procs[name])


def test_pipeline_on_a_standalone_cluster(standalone: Standalone, launch_stack: LaunchStack) -> None:
    stack = launch_stack(
        {
            "SPARK_MASTER": standalone.url,
            "SPARK_LOCAL_IP": "127.0.0.1",  # the driver, which executors connect back to
            "SPARK_EXECUTOR_MEMORY": "512m",  # spark-submit's fallback for --executor-memory; worker has 1g
        }
    )
    logs = [*stack.logs("spark", "merger", "generator"), *standalone.log_files()]

    # The job is an application of this master, and its executor runs on the worker.
    def running_app() -> dict | None:
        apps = standalone.master_json()["activeapps"]  # this master is the test's own: only the job
        assert len(apps) <= 1, apps
        return apps[0] if apps and apps[0]["state"] == "RUNNING" else None

    app = wait_for(running_app, 120, "the job registered as a running application", logs=logs)
    executors = wait_for(
        lambda: [e for e in standalone.worker_json()["executors"] if e["appid"] == app["id"]],
        120,
        "an executor of the job on the worker",
        logs=logs,
    )
    assert standalone.worker_json()["coresused"] == 1

    stack.start_run(rate=RATE, count=COUNT, seed=11)
    status = stack.wait_run_ended(timeout=180)
    assert status.state == "completed", status
    assert status.acknowledged == COUNT, status
    report = stack.verify(wait_s=240)
    assert report.records == COUNT and report.rows_in_merged == report.rows_expected > 0, report

    # The batches were computed there: the executor's own log (in the worker's work dir) shows its tasks.
    stderr = standalone.work_dir / app["id"] / str(executors[0]["id"]) / "stderr"
    assert stderr.exists(), f"no executor log at {stderr}; work dir has {list(standalone.work_dir.rglob('*'))[:20]}"
    assert "Finished task" in stderr.read_text(errors="replace"), log_tail(stderr)
    assert stack.components()["spark"].restarts == 0
