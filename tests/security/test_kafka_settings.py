"""The Kafka client security settings and their mapping to each client library (pure logic, no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from contract.kafka import (
    PLAINTEXT,
    KafkaSecurity,
    aiokafka_options,
    client_properties,
    explain_error,
    jaas_config,
    spark_kafka_options,
    write_client_properties,
)
from devicestream.kafka_tls import ensure_broker_security
from services.generator.settings import GeneratorSettings

pytestmark = pytest.mark.integration

PASSWORD = 's3cr3t-"quoted"-pa$$'


def sasl_ssl(ca: Path | None = None, **kw: object) -> KafkaSecurity:
    return KafkaSecurity(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="alice",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_ca_file=ca,
        **kw,
    )


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return ensure_broker_security(tmp_path / "security").ca_file


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):  # set on many machines; must not be read as ours
        monkeypatch.setenv(name, "/nonexistent")
    return monkeypatch


def test_plaintext_maps_to_nothing() -> None:
    assert aiokafka_options(PLAINTEXT) == {}
    assert spark_kafka_options(PLAINTEXT) == {}
    assert client_properties(PLAINTEXT) == ""


def test_read_from_the_shared_environment_names(clean_env: pytest.MonkeyPatch, ca: Path) -> None:
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    clean_env.setenv("KAFKA_SASL_USERNAME", "key")
    clean_env.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    clean_env.setenv("KAFKA_SSL_CA_FILE", str(ca))
    s = GeneratorSettings()
    sec = s.kafka_security
    assert (sec.kafka_security_protocol, sec.kafka_sasl_mechanism, sec.kafka_sasl_username) == (
        "SASL_SSL",
        "PLAIN",
        "key",
    )
    assert sec.kafka_sasl_password.get_secret_value() == PASSWORD
    assert sec.kafka_ssl_ca_file == ca and sec.kafka_ssl_cert_file is None


def test_the_password_from_a_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """KAFKA_SASL_PASSWORD_FILE (a compose secret): read at startup, kept out of the environment;
    KAFKA_SASL_PASSWORD wins when both are set; an unreadable file says which."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("KAFKA_SASL_USERNAME", "alice")
    clean_env.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    s = GeneratorSettings()
    assert s.kafka_security.kafka_sasl_password.get_secret_value() == PASSWORD
    assert aiokafka_options(s.kafka_security)["sasl_plain_password"] == PASSWORD and PASSWORD not in repr(s)
    clean_env.setenv("KAFKA_SASL_PASSWORD", "from-env")
    assert GeneratorSettings().kafka_sasl_password.get_secret_value() == "from-env"
    clean_env.delenv("KAFKA_SASL_PASSWORD")
    clean_env.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match=r"KAFKA_SASL_PASSWORD_FILE=.*missing cannot be read"):
        GeneratorSettings()


def test_the_password_is_in_no_repr_dump_or_description(clean_env: pytest.MonkeyPatch, ca: Path) -> None:
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("KAFKA_SASL_USERNAME", "alice")
    clean_env.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    s = GeneratorSettings()
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump()), s.describe(), repr(s.kafka_security)):
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": PASSWORD}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/c.pem"}, "KAFKA_SSL_KEY_FILE"),
        ({"KAFKA_SSL_CA_FILE": "/ca.pem"}, "only apply to SSL"),
    ],
)
def test_bad_settings_say_what_to_fix_without_the_password(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    for k, v in {"KAFKA_SASL_PASSWORD": PASSWORD, **env}.items():
        clean_env.setenv(k, v)
    with pytest.raises(ValidationError) as err:
        GeneratorSettings()
    assert says in str(err.value)
    assert PASSWORD not in str(err.value)


def test_aiokafka_options(ca: Path) -> None:
    opts = aiokafka_options(sasl_ssl(ca))
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("alice", PASSWORD)
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert not aiokafka_options(sasl_ssl(ca, kafka_ssl_check_hostname=False))["ssl_context"].check_hostname
    ssl_only = aiokafka_options(KafkaSecurity(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca))
    assert set(ssl_only) == {"security_protocol", "ssl_context"}
    sasl_plain = aiokafka_options(
        KafkaSecurity(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert "ssl_context" not in sasl_plain and sasl_plain["sasl_mechanism"] == "PLAIN"


def test_jaas_config_per_mechanism_and_quoting() -> None:
    scram = jaas_config(sasl_ssl())
    assert scram.startswith('org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" ')
    assert 'password="s3cr3t-\\"quoted\\"-pa$$";' in scram
    plain = jaas_config(sasl_ssl().model_copy(update={"kafka_sasl_mechanism": "PLAIN"}))
    assert plain.startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")


def test_spark_options_are_the_java_client_config_under_kafka(ca: Path) -> None:
    opts = spark_kafka_options(sasl_ssl(ca))
    assert opts == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": jaas_config(sasl_ssl(ca)),
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(ca),
        "kafka.ssl.endpoint.identification.algorithm": "https",
    }
    no_check = spark_kafka_options(sasl_ssl(ca, kafka_ssl_check_hostname=False))
    assert no_check["kafka.ssl.endpoint.identification.algorithm"] == ""
    system_cas = spark_kafka_options(sasl_ssl(None))
    assert "kafka.ssl.truststore.location" not in system_cas


def test_client_certificate_goes_inline_as_pem(tmp_path: Path, ca: Path) -> None:
    sec_dir = ca.parent
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    pem = (sec_dir / "broker.pem").read_text()
    key.write_text(pem[: pem.index("-----BEGIN CERTIFICATE-----")])
    cert.write_text(pem[pem.index("-----BEGIN CERTIFICATE-----") :])
    sec = KafkaSecurity(
        kafka_security_protocol="SSL", kafka_ssl_ca_file=ca, kafka_ssl_cert_file=cert, kafka_ssl_key_file=key
    )
    opts = spark_kafka_options(sec)
    assert opts["kafka.ssl.keystore.type"] == "PEM"
    assert opts["kafka.ssl.keystore.certificate.chain"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in opts["kafka.ssl.keystore.key"]
    assert isinstance(aiokafka_options(sec)["ssl_context"], ssl.SSLContext)  # the pair loads


def test_client_properties_file_is_owner_only_and_escaped(tmp_path: Path, ca: Path) -> None:
    path = write_client_properties(sasl_ssl(ca), tmp_path / "client.properties")
    assert path.stat().st_mode & 0o777 == 0o600
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert lines["security.protocol"] == "SASL_SSL"
    assert lines["ssl.truststore.location"] == str(ca)
    assert lines["sasl.jaas.config"].endswith(";")


def test_explained_errors_never_hold_the_password() -> None:
    sec = sasl_ssl()
    line = explain_error(RuntimeError(f"boom {PASSWORD}"), sec)
    assert PASSWORD not in line and "boom" in line
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    assert "not trusted" in explain_error(verify, sec) and "KAFKA_SSL_CA_FILE" in explain_error(verify, sec)


def test_secret_str_field(ca: Path) -> None:
    assert isinstance(sasl_ssl(ca).kafka_sasl_password, SecretStr)
