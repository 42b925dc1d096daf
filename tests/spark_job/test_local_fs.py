"""The job's local file system (runtime/maven/localfs): Hadoop's RawLocalFileSystem without child
processes (`chmod`, `readlink`), chosen by spark_job.session when its jar is on the classpath."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devicestream.paths import REPO_ROOT
from spark_job.session import LOCAL_FS_JAR, local_file_system
from tests.spark_job.conftest import connector_jars

PROBE = Path(__file__).with_name("local_fs_probe.py")


def test_the_jar_on_the_classpath_picks_the_no_fork_file_system() -> None:
    ours = ("devicestream.fs.NoForkLocalFileSystem", "devicestream.fs.NoForkLocalFs")
    hadoop = ("org.apache.hadoop.fs.RawLocalFileSystem", "org.apache.hadoop.fs.local.RawLocalFs")
    assert local_file_system(f"/a/kafka-clients.jar,file:///x/y/{LOCAL_FS_JAR}") == ours
    assert local_file_system("/a/kafka-clients.jar") == hadoop
    assert local_file_system("") == hadoop
    assert local_file_system(f"/a/not-{LOCAL_FS_JAR}") == hadoop


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_job_under_spark_submit_uses_it_and_it_acts_as_raw_local_file_system(tmp_path: Path) -> None:
    """In its own spark-submit JVM (as the job runs, whatever session the tests share): directories get
    the umasked default mode, permissions are set, link statuses are RawLocalFileSystem's (a file's, a
    directory's, a symbolic link's), FileContext uses it too and renames through it."""
    jars = connector_jars()
    assert LOCAL_FS_JAR in jars, "make install builds it into .jars/spark"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]", "--jars", jars]
    done = subprocess.run(
        [*cmd, str(PROBE), str(tmp_path)], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("LOCAL_FS_PROBE ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-3000:]
    out = json.loads(lines[-1].removeprefix("LOCAL_FS_PROBE "))
    assert out["fs"] == "devicestream.fs.NoForkLocalFileSystem"
    assert out["fc"] == "devicestream.fs.NoForkLocalFs"
    assert (out["dir_mode"], out["file_mode"]) == ("0o755", "0o640")
    for name, (ours, theirs) in out["link_status"].items():
        assert ours == theirs, name
    assert out["renamed"]
