"""A real embedded broker with a SASL_SSL-only client listener (SCRAM-SHA-512, a CA made into its
data folder), for the security tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devicestream.kafka_broker import KafkaCluster
from devicestream.kafka_tls import ensure_broker_security
from devicestream.processes import free_ports
from tests.conftest import Broker
from tests.tiers import starts_processes


def password_of(broker: Broker) -> str:
    assert broker.cluster.security is not None
    return broker.cluster.security.password.get_secret_value()


@pytest.fixture(scope="module")
@starts_processes
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A single-node KRaft broker whose only client listener is SASL_SSL, for the whole module."""
    base = tmp_path_factory.mktemp("secure-kafka")
    port, cport = free_ports(2)
    security = ensure_broker_security(base / "kafka" / "security")
    broker = Broker(KafkaCluster.single(base / "kafka", port, cport, security=security), base / "kafka.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
