"""The shared validity table (tests/validity_cases.py) through the real transform."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark.sql import Row, SparkSession

from spark_job import transform
from tests.validity_cases import CASES, Case

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def classified(spark: SparkSession) -> dict[int, Row]:
    """Kafka offset (the case's index) -> classify's row, plus the number of rows `rows` gives."""
    ts = datetime(2026, 11, 28, tzinfo=UTC)
    data = [
        (bytearray(b"k"), None if c.value is None else bytearray(c.value), "t", 0, i, ts) for i, c in enumerate(CASES)
    ]
    schema = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    df = transform.classify(spark.createDataFrame(data, schema))
    # rows() is what the sink writes: count it per record through a row's own columns.
    with_rows = df.select("*", transform.F.size(transform.F.coalesce("devices", transform.F.array())).alias("n"))
    return {r["offset"]: r for r in with_rows.collect()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_job_decides_as_the_table_says(classified: dict[int, Row], case: Case) -> None:
    row = classified[CASES.index(case)]
    assert row["reason"] == case.reason
    if case.reason is None:
        assert row["eventTime"] == case.event_time
        assert row["n"] == case.rows


def test_rows_gives_one_row_per_reading_of_the_valid_cases(spark: SparkSession) -> None:
    ts = datetime(2026, 11, 28, tzinfo=UTC)
    data = [
        (bytearray(b"k"), None if c.value is None else bytearray(c.value), "t", 0, i, ts) for i, c in enumerate(CASES)
    ]
    schema = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    rows = transform.rows(transform.classify(spark.createDataFrame(data, schema))).count()
    assert rows == sum(c.rows for c in CASES if c.reason is None)
