"""Session fixtures: one real embedded Kafka broker (on free ports, in a temp folder) for every test
that needs one. Tests that need a topic of their own create it with a unique name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract.kafka import KafkaSecurity
from devicestream.kafka_broker import KafkaCluster, start_node
from devicestream.processes import free_ports, log_tail, stop_process
from kafka_io.admin import ensure_topic, wait_until_ready


@dataclass
class Broker:
    cluster: KafkaCluster
    log_file: Path
    proc: object = None

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def security(self) -> KafkaSecurity:
        """PLAINTEXT, or SASL_SSL for a cluster made with `security` (tests/security)."""
        return self.cluster.client_security

    def start(self, deadline_s: float = 90.0) -> None:
        node = self.cluster.nodes[0]
        self.proc = start_node(self.cluster, node, self.log_file)
        try:
            alive = lambda: self.proc.poll() is None  # noqa: E731
            asyncio.run(wait_until_ready(self.bootstrap, deadline_s, alive=alive, security=self.security))
        except Exception as e:
            raise RuntimeError(f"{e}\n--- broker log tail:\n{log_tail(self.log_file)}") from e

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def new_topic(self, partitions: int = 3, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        asyncio.run(ensure_topic(self.bootstrap, name, partitions, security=self.security))
        return name


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real single-node KRaft broker for the whole session."""
    base = tmp_path_factory.mktemp("kafka")
    port, cport = free_ports(2)
    broker = Broker(KafkaCluster.single(base, port, cport), base / "kafka.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that stop or restart it."""
    port, cport = free_ports(2)
    broker = Broker(KafkaCluster.single(tmp_path / "kafka", port, cport), tmp_path / "kafka.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
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


# -- test tiers ------------------------------------------------------------------------------------
#: Fixtures that start a real process (broker, Spark, a service, a whole stack): a test that uses one,
#: directly or through another fixture, is in the integration tier.
_PROCESS_FIXTURES = frozenset(
    {
        "kafka",
        "private_kafka",
        "spark",
        "stack",
        "bare_stack",
        "launch_stack",
        "generator_factory",
        "merger_runner",
        "cluster3",
        "standalone",
        "job_factory",
        "compose",
    }
)
#: Folders whose tests all run real processes (whatever their fixtures).
_PROCESS_FOLDERS = frozenset({"e2e", "deploy", "foundation", "security"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test `unit` (pure: no process, no network; `make test-unit`) or `integration`.
    A module that starts processes by other means marks itself `pytestmark = pytest.mark.integration`."""
    tests_root = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests_root).parts[0] if item.path.is_relative_to(tests_root) else ""
        uses_process = bool(_PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if uses_process or folder in _PROCESS_FOLDERS or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
