"""Building the SparkSession (never at import time)."""

from __future__ import annotations

import logging
import os

from pyspark import SparkContext
from pyspark.sql import SparkSession

from spark_job.settings import SparkJobSettings

log = logging.getLogger(__name__)

#: runtime/maven/localfs, built by scripts/install.sh into .jars/spark/ (and into the Spark image).
LOCAL_FS_JAR = "devicestream-localfs.jar"


def local_fs_jar(jars: str) -> str | None:
    """runtime/maven/localfs's jar among the comma-separated `jars`, if it is there."""
    return next((j for j in jars.split(",") if j.rsplit("/", 1)[-1] == LOCAL_FS_JAR), None)


def local_file_system(jars: str) -> tuple[str, str]:
    """The Hadoop classes for file:// paths (FileSystem, and FileContext's AbstractFileSystem) given
    the comma-separated jars on the driver's classpath. Hadoop's RawLocalFileSystem, without its
    native library (pyspark ships none), starts a `chmod` for every directory and file it creates
    and a `readlink` for every link status (each rename of a checkpoint log file): about ten
    processes per micro-batch, ~6 ms each, on the query's thread. runtime/maven/localfs's
    subclass does the same with java.nio; without its jar, RawLocalFileSystem itself (no .crc
    sidecars either way)."""
    if local_fs_jar(jars) is not None:
        return "devicestream.fs.NoForkLocalFileSystem", "devicestream.fs.NoForkLocalFs"
    return "org.apache.hadoop.fs.RawLocalFileSystem", "org.apache.hadoop.fs.local.RawLocalFs"


def under_spark_submit() -> bool:
    """True when spark-submit started this driver (its JVM already runs with --master, --jars...)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _driver_jars(settings: SparkJobSettings) -> str:
    """The jars on the driver's classpath: spark-submit's --jars (the JVM's spark.jars system property,
    set before the context starts), else the settings' spark.jars. Under spark-submit, also drops the
    file systems it cached (see below)."""
    if under_spark_submit():
        SparkContext._ensure_initialized()
        jvm = SparkContext._jvm
        assert jvm is not None
        # spark-submit already opened file:// with Hadoop's defaults (LocalFileSystem, .crc files and
        # all) to resolve the jars, and FileSystem.get caches by scheme, not by configuration: without
        # this the session's fs.file.impl would only reach FileContext (the checkpoint), not the writer.
        jvm.org.apache.hadoop.fs.FileSystem.closeAll()
        return str(jvm.java.lang.System.getProperty("spark.jars") or "")
    return settings.jars


def build_session(settings: SparkJobSettings, app_name: str = "devicestream-spark-job") -> SparkSession:
    fs_impl, abstract_fs_impl = local_file_system(_driver_jars(settings))
    builder = (
        SparkSession.builder.appName(app_name)
        # eventTime is formatted in the session zone (see transform.check_utc_session).
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.enabled", str(settings.ui_enabled).lower())
        .config("spark.ui.showConsoleProgress", "false")
        # No shuffle in this job: keep plans simple and predictable.
        .config("spark.sql.adaptive.enabled", "false")
        # Local files without Hadoop's .crc sidecars (the checkpoint's offset and commit logs, the part
        # files): half the files per write, for nothing the job reads; Hadoop's local file system
        # never fsyncs either way (the sink fsyncs what it commits). No _SUCCESS marker: the sink
        # reads the part files of a job that returned. No child processes (local_file_system).
        .config("spark.hadoop.fs.file.impl", fs_impl)
        .config("spark.hadoop.fs.AbstractFileSystem.file.impl", abstract_fs_impl)
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        # The plan text Spark posts to its listeners (UI, event log) for every query execution: two
        # per micro-batch. "formatted" (the default) walked each plan node by node: 3.7% of the
        # JVM's samples at 1,000 events/s (JFR); nothing here reads more than the simple tree.
        .config("spark.sql.ui.explainMode", "simple")
        # The status store (what the UI and the status tracker read) lives in the driver's heap even
        # with the UI off: by default the last 1,000 jobs, stages and SQL executions (a plan graph and
        # its metrics each, two per micro-batch) and 100,000 tasks, all promoted to the old generation
        # of a heap that also runs the tasks (local mode), then dropped. The job reads none of it (its
        # progress comes from its query listener); the UI, when on, shows the last 100.
        .config("spark.ui.retainedJobs", "100")
        .config("spark.ui.retainedStages", "100")
        .config("spark.ui.retainedTasks", "1000")
        .config("spark.sql.ui.retainedExecutions", "100")
    )
    if not under_spark_submit():
        # Under spark-submit, --master / --driver-memory / --jars are already applied to the JVM.
        builder = builder.master(settings.master).config("spark.driver.memory", settings.driver_memory)
        # spark.jars reach the tasks' class loader, not Hadoop's at the context's start: the file
        # system's jar goes on the driver's own classpath (the JVM is started by getOrCreate).
        jar = local_fs_jar(settings.jars)
        if jar is not None:
            builder = builder.config("spark.driver.extraClassPath", jar)
    if settings.jars:
        builder = builder.config("spark.jars", settings.jars)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark_log_level)
    log.info(
        "spark session ready",
        extra={
            "master": spark.sparkContext.master,
            "spark_version": spark.version,
            "app_id": spark.sparkContext.applicationId,
            "local_fs": fs_impl,
        },
    )
    return spark
