"""Running a Spark script of the bench with spark-submit, as the launcher runs the job: the flags,
the environment, the heap (the job's as the launcher gives it; 1g for the baselines)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.common import PY, StageError
from bench.procs import Broker
from devicestream.paths import REPO_ROOT, jars_dir
from devicestream.settings import LauncherSettings

T = TypeVar("T")

#: The baselines' heap (plain Spark and the batch run): 1g, more than the job's default.
BASELINE_DRIVER_MEMORY = "1g"


def job_driver_memory() -> str:
    """The streaming job's heap as the launcher starts it (its default --driver-memory)."""
    return str(LauncherSettings.model_fields["spark_driver_memory"].default)


def spark_submit_argv(script: Path, event_log: Path, driver_memory: str = BASELINE_DRIVER_MEMORY) -> list[str]:
    jars = ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))
    event_log.mkdir(parents=True, exist_ok=True)
    return [
        str(REPO_ROOT / ".venv" / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        driver_memory,
        "--jars",
        jars,
        "--conf",
        "spark.ui.showConsoleProgress=false",
        "--conf",
        "spark.eventLog.enabled=true",
        "--conf",
        f"spark.eventLog.dir=file://{event_log.resolve()}",
        str(script),
    ]


def spark_env(broker: Broker, topic: str, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_TOPIC": topic,
        "DEVICESTREAM_DATA_DIR": str(data),
        "PYSPARK_PYTHON": PY,
        "PYSPARK_DRIVER_PYTHON": PY,
        "PYTHONUNBUFFERED": "1",
    }


def run_spark_script(
    script: str, argv: list[str], env: dict[str, str], timeout: float, parse: Callable[[str], T | None]
) -> T:
    """Run a bench Spark script (`argv`) and `parse` its stdout; StageError with the tails of its
    output when it fails or `parse` finds nothing (None)."""
    res = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    doc = parse(res.stdout)
    if res.returncode != 0 or doc is None:
        raise StageError(f"{script} failed ({res.returncode}):\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}")
    return doc
