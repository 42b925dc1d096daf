"""The Spark job's JVM-side topic identity on the SASL_SSL-only broker: its admin client takes the
same security settings as the Kafka source (SparkJobSettings.kafka_client_config), so the topic id
is known; a broker that cannot be asked costs one bounded ask per backoff, not one per batch."""

from __future__ import annotations

import subprocess

import pytest
from pyspark.sql import SparkSession

from devicestream.paths import jars_dir
from devicestream.processes import free_ports
from spark_job.settings import SparkJobSettings
from spark_job.topic_identity import TopicIdentity, next_backoff
from tests.conftest import Broker
from tests.spark_job.conftest import spark  # noqa: F401  (the session fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def topic_id_by_kafka_tools(broker: Broker, topic: str) -> str:
    """The topic id as Kafka's own TopicCommand describes it (the data folder's client.properties)."""
    props = broker.cluster.security.dir / "client.properties"
    cmd = ["java", "-cp", f"{jars_dir('kafka')}/*", "org.apache.kafka.tools.TopicCommand"]
    cmd += ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--describe", "--topic", topic]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.split("TopicId:")[1].split()[0]


def test_topic_id_is_known_on_the_secure_broker(spark: SparkSession, secure_kafka: Broker) -> None:  # noqa: F811
    topic = secure_kafka.new_topic(prefix="identity")
    settings = SparkJobSettings(kafka_bootstrap_servers=secure_kafka.bootstrap, **secure_kafka.security.model_dump())
    assert settings.kafka_client_config["security.protocol"] == "SASL_SSL"
    # the source's options are the same configuration under kafka.
    assert settings.kafka_source_options == {f"kafka.{k}": v for k, v in settings.kafka_client_config.items()}
    identity = TopicIdentity(spark, settings.kafka_client_config, topic)
    try:
        first = identity()
        assert first is not None and first == topic_id_by_kafka_tools(secure_kafka, topic)
        assert identity() == first and identity.asks == 2  # known: every ask answered
    finally:
        identity.close()


def test_plaintext_only_config_cannot_ask_the_secure_broker_and_backs_off(
    spark: SparkSession,  # noqa: F811
    secure_kafka: Broker,
) -> None:
    """What the job did before: bootstrap servers only. The ask fails within its timeout, and the
    calls after it (each batch's) answer None at once until the backoff has passed."""
    now = [0.0]
    identity = TopicIdentity(
        spark,
        {"bootstrap.servers": secure_kafka.bootstrap},
        "any",
        timeout_s=2.0,
        first_timeout_s=2.0,
        clock=lambda: now[0],
    )
    try:
        assert identity() is None and identity.asks == 1
        for _ in range(20):  # twenty batches within the backoff: no ask
            assert identity() is None
        assert identity.asks == 1
        now[0] += identity.backoff_s
        assert identity() is None and identity.asks == 2  # asked again after the backoff, which doubled
        now[0] += identity.backoff_s
        assert identity() is None and identity.asks == 2
    finally:
        identity.close()


def test_unreachable_broker_backs_off(spark: SparkSession) -> None:  # noqa: F811
    (port,) = free_ports(1)
    identity = TopicIdentity(
        spark, {"bootstrap.servers": f"127.0.0.1:{port}"}, "any", timeout_s=1.0, first_timeout_s=1.0
    )
    try:
        assert identity() is None and identity() is None and identity.asks == 1
    finally:
        identity.close()


def test_backoff_doubles_up_to_its_cap() -> None:
    waits, current = [], None
    for _ in range(6):
        current = next_backoff(current, 5.0, 60.0)
        waits.append(current)
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
