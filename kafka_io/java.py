"""Kafka's Java client configuration of a `KafkaSecurity` (contract/kafka.py): the Kafka source's
`kafka.*` options (spark_job), the JVM admin client's properties (kafka_io/topic_identity.py) and a
client.properties for Kafka's own tools (bench, the broker's SASL listener). PLAINTEXT maps to
nothing. No aiokafka here: the Spark job imports this module."""

from __future__ import annotations

from pathlib import Path

from contract.kafka import KafkaSecurity

_LOGIN_MODULES: dict[str, str] = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jaas_config(sec: KafkaSecurity) -> str:
    """sasl.jaas.config for the mechanism: `<LoginModule> required username="..." password="...";`."""
    return (
        f"{_LOGIN_MODULES[sec.kafka_sasl_mechanism]} required username={_jaas_quote(sec.kafka_sasl_username)} "
        f"password={_jaas_quote(sec.kafka_sasl_password.get_secret_value())};"
    )


def java_client_config(sec: KafkaSecurity) -> dict[str, str]:
    """Kafka Java client configuration ({} for PLAINTEXT). Trust and client keys are PEM (Kafka 2.7+:
    ssl.truststore.type=PEM / ssl.keystore.type=PEM), so no JKS files or store passwords are needed."""
    if sec.kafka_security_protocol == "PLAINTEXT":
        return {}
    conf = {"security.protocol": sec.kafka_security_protocol}
    if sec.uses_sasl:
        conf["sasl.mechanism"] = sec.kafka_sasl_mechanism
        conf["sasl.jaas.config"] = jaas_config(sec)
    if sec.uses_ssl:
        if sec.kafka_ssl_ca_file is not None:
            conf["ssl.truststore.type"] = "PEM"
            conf["ssl.truststore.location"] = str(sec.kafka_ssl_ca_file)
        if sec.kafka_ssl_cert_file is not None and sec.kafka_ssl_key_file is not None:
            conf["ssl.keystore.type"] = "PEM"
            conf["ssl.keystore.certificate.chain"] = sec.kafka_ssl_cert_file.read_text()
            conf["ssl.keystore.key"] = sec.kafka_ssl_key_file.read_text()
        conf["ssl.endpoint.identification.algorithm"] = "https" if sec.kafka_ssl_check_hostname else ""
    return conf


def spark_kafka_options(sec: KafkaSecurity) -> dict[str, str]:
    """Options for Spark's Kafka source/sink: the Java client configuration under `kafka.`."""
    return {f"kafka.{k}": v for k, v in java_client_config(sec).items()}


def _properties_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "")


def client_properties(sec: KafkaSecurity) -> str:
    """A client.properties for Kafka's tools (--command-config / --producer.config / --consumer.config).
    It holds the password: write it with `write_client_properties` (owner-only file)."""
    return "".join(f"{k}={_properties_escape(v)}\n" for k, v in java_client_config(sec).items())


def write_client_properties(sec: KafkaSecurity, path: Path) -> Path:
    """Write `client_properties(sec)` to `path`, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(client_properties(sec))
    return path
