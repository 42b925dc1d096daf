"""A real embedded broker with a SASL_SSL-only client listener (SCRAM-SHA-512, a CA made into its
data folder), for the security tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devicestream.broker_process import single_broker
from devicestream.kafka_tls import ensure_broker_security
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
    with single_broker(base, security=ensure_broker_security(base / "kafka" / "security")) as broker:
        yield broker
