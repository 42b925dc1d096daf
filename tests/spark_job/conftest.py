"""One small SparkSession (local[2], UI off, connector jars loaded) for every spark_job test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from devicestream.paths import jars_dir
from spark_job.session import build_session
from spark_job.settings import SparkJobSettings
from tests.tiers import starts_processes


def connector_jars() -> str:
    return ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))


@pytest.fixture(scope="session")
@starts_processes
def spark() -> Iterator[SparkSession]:
    # (the job's default heap, as the launcher gives it: the huge-record cases run on it)
    settings = SparkJobSettings(master="local[2]", jars=connector_jars(), shuffle_partitions=2, ui_enabled=False)
    session = build_session(settings, app_name="devicestream-spark-job-tests")
    try:
        yield session
    finally:
        session.stop()
