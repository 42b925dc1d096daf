"""Session fixtures: one real embedded Kafka broker (on free ports, in a temp folder) for every test
that needs one. Tests that need a topic of their own create it with a unique name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devicestream.broker_process import BrokerProcess, single_broker
from tests.tiers import assign_tiers, starts_processes

#: the tests' broker is the bench's: one harness (devicestream/broker_process.py)
Broker = BrokerProcess


@pytest.fixture(scope="session")
@starts_processes
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real single-node KRaft broker for the whole session."""
    with single_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
@starts_processes
def private_kafka(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that stop or restart it."""
    with single_broker(tmp_path) as broker:
        yield broker


@pytest.fixture(scope="session")
@starts_processes
def spark() -> Iterator[object]:
    """One local SparkSession for the whole test session, with the Kafka connector jars on its
    classpath (a JVM's classpath is fixed when the first session starts)."""
    from pyspark.sql import SparkSession

    from devicestream.paths import jars_dir

    jars = ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))
    session = (
        SparkSession.builder.master("local[2]")
        .appName("devicestream-tests")
        .config("spark.jars", jars)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


# -- test tiers (tests/tiers.py) ------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`unit` unless marked `integration`; an unmarked test reaching a process fixture is refused."""
    assign_tiers(items)
