"""The job's local file system (runtime/maven/localfs): Hadoop's RawLocalFileSystem without child
processes (`chmod`, `readlink`), chosen by spark_job.session when its jar is on the classpath."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from spark_job.session import LOCAL_FS_JAR, local_file_system


def test_the_jar_on_the_classpath_picks_the_no_fork_file_system() -> None:
    ours = ("devicestream.fs.NoForkLocalFileSystem", "devicestream.fs.NoForkLocalFs")
    hadoop = ("org.apache.hadoop.fs.RawLocalFileSystem", "org.apache.hadoop.fs.local.RawLocalFs")
    assert local_file_system(f"/a/kafka-clients.jar,file:///x/y/{LOCAL_FS_JAR}") == ours
    assert local_file_system("/a/kafka-clients.jar") == hadoop
    assert local_file_system("") == hadoop
    assert local_file_system(f"/a/not-{LOCAL_FS_JAR}") == hadoop


@pytest.mark.integration
def test_the_session_uses_it_and_it_acts_as_raw_local_file_system(spark: SparkSession, tmp_path: Path) -> None:
    """Directories get the umasked default mode, permissions are set, a file's link status is its
    status, a symbolic link's is a link: as RawLocalFileSystem, through FileSystem and FileContext."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    assert conf.get("fs.file.impl") == "devicestream.fs.NoForkLocalFileSystem"
    path = jvm.org.apache.hadoop.fs.Path
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf)
    assert fs.getClass().getName() == "devicestream.fs.NoForkLocalFileSystem"

    assert fs.mkdirs(path(f"file://{tmp_path}/a/b"))
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o755
    (tmp_path / "f").write_text("x")
    fs.setPermission(path(f"file://{tmp_path}/f"), jvm.org.apache.hadoop.fs.permission.FsPermission(0o640))
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o640

    (tmp_path / "link").symlink_to(tmp_path / "f")
    raw = jvm.org.apache.hadoop.fs.RawLocalFileSystem()
    raw.initialize(jvm.java.net.URI("file:///"), conf)
    for name in ("f", "link", "a"):  # the link status RawLocalFileSystem gives (after its `readlink`)
        ours, theirs = (x.getFileLinkStatus(path(f"file://{tmp_path}/{name}")) for x in (fs, raw))
        assert (ours.isSymlink(), ours.isDirectory(), ours.getLen(), ours.getPath().toString()) == (
            theirs.isSymlink(),
            theirs.isDirectory(),
            theirs.getLen(),
            theirs.getPath().toString(),
        ), name
    fc = jvm.org.apache.hadoop.fs.FileContext.getFileContext(conf)
    plain = fc.getFileLinkStatus(path(f"file://{tmp_path}/f"))
    assert not plain.isSymlink() and plain.getLen() == 1
    # a rename through FileContext: how Spark commits a checkpoint log file
    no_options = spark.sparkContext._gateway.new_array(jvm.org.apache.hadoop.fs.Options.Rename, 0)
    fc.rename(path(f"file://{tmp_path}/f"), path(f"file://{tmp_path}/g"), no_options)
    assert (tmp_path / "g").read_text() == "x" and not (tmp_path / "f").exists()
