"""The embedded broker with SASL_SSL only: clients with the data folder's CA and SCRAM user get in;
nothing listens in plaintext for clients."""

from __future__ import annotations

import asyncio

from devicestream.kafka_broker import describe_cluster
from tests.conftest import Broker


def test_secured_broker_answers_sasl_ssl_clients(secure_kafka: Broker) -> None:
    meta = asyncio.run(describe_cluster(secure_kafka.bootstrap, security=secure_kafka.security))
    assert len(meta["brokers"]) == 1
    props = secure_kafka.cluster.config_path(secure_kafka.cluster.nodes[0]).read_text()
    listeners = next(line for line in props.splitlines() if line.startswith("listeners="))
    assert "PLAINTEXT://" not in listeners.replace("CONTROLLER://", "")
    assert listeners.startswith("listeners=SASL_SSL://")
