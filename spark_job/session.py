"""Building the SparkSession (never at import time)."""

from __future__ import annotations

import logging
import os

from pyspark.sql import SparkSession

from spark_job.settings import SparkJobSettings

log = logging.getLogger(__name__)


def under_spark_submit() -> bool:
    """True when spark-submit started this driver (its JVM already runs with --master, --jars...)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(settings: SparkJobSettings, app_name: str = "devicestream-spark-job") -> SparkSession:
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
        # reads the part files of a job that returned.
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .config("spark.hadoop.fs.AbstractFileSystem.file.impl", "org.apache.hadoop.fs.local.RawLocalFs")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    if not under_spark_submit():
        # Under spark-submit, --master / --driver-memory / --jars are already applied to the JVM.
        builder = builder.master(settings.master).config("spark.driver.memory", settings.driver_memory)
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
        },
    )
    return spark
