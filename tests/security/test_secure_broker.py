"""The embedded broker with SASL_SSL only: clients with the data folder's CA and SCRAM user get in;
nothing listens in plaintext for clients."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from contract.kafka_admin import describe_cluster
from devicestream.kafka_broker import BrokerError, KafkaCluster
from devicestream.kafka_tls import ensure_broker_security
from devicestream.paths import jars_dir
from devicestream.processes import free_ports
from tests.conftest import Broker
from tests.security.conftest import password_of

pytestmark = pytest.mark.integration


def test_secured_broker_answers_sasl_ssl_clients(secure_kafka: Broker) -> None:
    meta = asyncio.run(describe_cluster(secure_kafka.bootstrap, security=secure_kafka.security))
    assert len(meta["brokers"]) == 1
    props = secure_kafka.cluster.config_path(secure_kafka.cluster.nodes[0]).read_text()
    listeners = next(line for line in props.splitlines() if line.startswith("listeners="))
    assert "PLAINTEXT://" not in listeners.replace("CONTROLLER://", "")
    assert listeners.startswith("listeners=SASL_SSL://")


def test_kafkas_own_tools_connect_with_the_client_properties(secure_kafka: Broker) -> None:
    """The data folder's client.properties (Java client: SASL_SSL, SCRAM, PEM truststore) lets
    Kafka's TopicCommand in."""
    topic = secure_kafka.new_topic(prefix="tools")
    props = secure_kafka.cluster.security.dir / "client.properties"
    assert props.stat().st_mode & 0o777 == 0o600
    base = ["java", "-cp", f"{jars_dir('kafka')}/*", "org.apache.kafka.tools.TopicCommand"]
    base += ["--bootstrap-server", secure_kafka.bootstrap, "--list"]
    res = subprocess.run([*base, "--command-config", str(props)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and topic in res.stdout.split(), res.stdout + res.stderr
    assert password_of(secure_kafka) not in res.stdout + res.stderr


def test_storage_formatted_unsecured_is_refused_when_started_secured(tmp_path: Path) -> None:
    """SCRAM users are written only when storage is formatted: a data folder first used without
    --secure gets a clear refusal instead of a broker that cannot log in to itself."""
    plain = KafkaCluster.single(tmp_path / "kafka", *free_ports(2))
    node = plain.nodes[0]
    (plain.node_dir(node) / "data").mkdir(parents=True)
    (plain.node_dir(node) / "data" / "meta.properties").write_text("version=1\n")
    secured = KafkaCluster.single(
        tmp_path / "kafka", node.port, node.controller_port, security=ensure_broker_security(tmp_path / "sec")
    )
    with pytest.raises(BrokerError, match=r"formatted without SCRAM users.*new data folder"):
        secured.prepare(node)
    plain.check_storage_security(node)  # unsecured: nothing to refuse
