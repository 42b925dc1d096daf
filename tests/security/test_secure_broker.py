"""The embedded broker with SASL_SSL only: clients with the data folder's CA and SCRAM user get in;
nothing listens in plaintext for clients."""

from __future__ import annotations

import asyncio
import subprocess

from devicestream.kafka_broker import describe_cluster
from devicestream.paths import jars_dir
from tests.conftest import Broker
from tests.security.conftest import password_of


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
