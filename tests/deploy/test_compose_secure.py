"""compose.secure.yaml (Kafka on SASL_SSL only), checked without a Docker engine: merged over
compose.yaml as compose merges it, every component is configured through contract/kafka.py's settings
(the Spark job included) and validates against the secrets the init service really makes, no secret
is in any environment, the broker offers clients SASL_SSL only, and the host-network variant moves
addresses only. `make compose-test` runs the deployment for real (tests/deploy/compose_run.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devicestream.compose_secrets import make_secrets
from kafka_io.clients import aiokafka_options
from services.gateway.settings import GatewaySettings
from services.generator.settings import GeneratorSettings
from services.merger.settings import MergerSettings
from spark_job.settings import SparkJobSettings
from tests.deploy.settings_env import REPO_ROOT
from tests.deploy.test_compose import (
    COMPOSE,
    COMPOSE_SPEC_TOOL,
    HOSTNET_PORTS,
    _ComposeLoader,
    compose_go,
    container_env,  # noqa: F401 (a fixture)
    environment,
    interpolate,
)

pytestmark = pytest.mark.integration

SECURE = REPO_ROOT / "compose.secure.yaml"
SECURE_HOSTNET = REPO_ROOT / "compose.secure.hostnet.yaml"
CLIENTS = {
    "spark": SparkJobSettings,
    "merger": MergerSettings,
    "generator": GeneratorSettings,
    "gateway": GatewaySettings,
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file, for what these files use: mappings merged, `environment`
    merged by name, `volumes` by target, other sequences (command, healthcheck test) replaced."""
    out = dict(base)
    for key, value in over.items():
        if key == "volumes" and isinstance(value, list):
            by_target = {v.split(":")[1]: v for v in out.get(key, [])}
            by_target.update({v.split(":")[1]: v for v in value})
            out[key] = list(by_target.values())
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def secure() -> dict[str, Any]:
    base = yaml.safe_load(COMPOSE.read_text())
    return interpolate(merge(base, yaml.safe_load(SECURE.read_text())), {})


def svc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["services"][name]


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the `kafka-secrets` init service makes, here owned by this user."""
    root = tmp_path_factory.mktemp("secrets") / "secrets"
    make_secrets(root, ["kafka"], os.getuid(), os.getuid())
    return root


@pytest.mark.parametrize("name", CLIENTS)
def test_every_component_reaches_kafka_on_sasl_ssl_through_the_one_settings_model(
    name: str,
    secure: dict[str, Any],
    secrets_dir: Path,
    container_env: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    env = environment(svc(secure, name))
    assert "KAFKA_SASL_PASSWORD" not in env, "the password comes from a file, not the environment"
    assert "kafka-secrets:/secrets:ro" in svc(secure, name)["volumes"]
    container_env({k: v.replace("/secrets", str(secrets_dir)) for k, v in env.items()})
    settings = CLIENTS[name](_env_file=None)  # type: ignore[call-arg]
    sec = settings.kafka_security
    assert (sec.kafka_security_protocol, sec.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert sec.kafka_sasl_password.get_secret_value() == (secrets_dir / "client" / "password").read_text()
    assert aiokafka_options(sec)["ssl_context"].check_hostname
    assert settings.kafka_bootstrap_servers == "kafka:9092"


def test_no_secret_is_in_any_environment_or_command(secure: dict[str, Any], secrets_dir: Path) -> None:
    text = yaml.safe_dump(secure)
    for name, service in secure["services"].items():
        named = [k for k in environment(service) if "PASSWORD" in k or "JAAS" in k or "SECRET" in k]
        # (compose.yaml's DEVICESTREAM_INTERNAL_SECRET, the gateway's, still comes from the shell or .env)
        assert set(named) <= {"DEVICESTREAM_INTERNAL_SECRET", "KAFKA_SASL_PASSWORD_FILE"}, (name, named)
    # the one command that needs it (kafka-storage's format) reads it from its file
    assert re.findall(r"password=\S+", text) == ["password=$$(cat"]
    password = (secrets_dir / "client" / "password").read_text()
    assert password not in text


def test_the_broker_offers_clients_sasl_ssl_only(secure: dict[str, Any]) -> None:
    kafka = environment(svc(secure, "kafka"))
    listeners = dict(item.split("://") for item in kafka["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"CONTROLLER": "PLAINTEXT", "SASL_SSL": "SASL_SSL"}
    assert listeners["SASL_SSL"] == ":9092"
    assert listeners["CONTROLLER"].startswith("localhost:"), "the PLAINTEXT controller only on its own loopback"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://kafka:9092"
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == kafka["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"]
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_OPTS"] == "-Djava.security.auth.login.config=/secrets/broker/jaas.conf"
    # Kafka's own tools log in with the client.properties the init service made
    for name in ("kafka", "topic"):
        test = svc(secure, name)["healthcheck"]["test"] if name == "kafka" else svc(secure, name)["command"]
        assert test[test.index("--command-config") + 1] == "/secrets/broker/client.properties"


def test_storage_is_formatted_with_the_scram_user_the_clients_log_in_as(secure: dict[str, Any]) -> None:
    script = svc(secure, "kafka-storage")["command"][-1]
    user = environment(svc(secure, "generator"))["KAFKA_SASL_USERNAME"]
    # ($$: compose's escape of $, so the shell, not compose, runs the substitution)
    assert f'--add-scram "SCRAM-SHA-512=[name={user},password=$$(cat /secrets/broker/password)]"' in script
    assert "--ignore-formatted" in script
    order = {
        "kafka-storage": ("kafka-secrets", "service_completed_successfully"),
        "kafka": ("kafka-storage", "service_completed_successfully"),
    }
    for name, (before, condition) in order.items():
        assert svc(secure, name)["depends_on"][before]["condition"] == condition
    for name in ("kafka-secrets", "kafka-storage"):
        assert svc(secure, name)["network_mode"] == "none" and svc(secure, name)["restart"] == "no"


def test_the_init_service_lays_out_one_file_per_reader(secrets_dir: Path) -> None:
    mode = {p.relative_to(secrets_dir).as_posix(): p.stat().st_mode & 0o777 for p in secrets_dir.rglob("*")}
    assert mode["ca.pem"] == 0o444
    assert mode["ca"] == 0o700 and mode["ca/ca.key"] == 0o600
    for name in ("broker/broker.pem", "broker/jaas.conf", "broker/password", "broker/client.properties"):
        assert mode[name] == 0o400, name
    assert mode["client/password"] == 0o400 and mode["broker"] == mode["client"] == 0o500
    jaas = (secrets_dir / "broker" / "jaas.conf").read_text()
    assert jaas.startswith("KafkaServer {") and "ScramLoginModule required" in jaas
    props = (secrets_dir / "broker" / "client.properties").read_text()
    assert "security.protocol=SASL_SSL" in props and f"ssl.truststore.location={secrets_dir}/ca.pem" in props
    before = {p: p.read_bytes() for p in secrets_dir.rglob("*") if p.is_file()}
    make_secrets(secrets_dir, ["kafka"], os.getuid(), os.getuid())  # run again: the same material
    assert before == {p: p.read_bytes() for p in secrets_dir.rglob("*") if p.is_file()}


def test_the_hostnet_variant_moves_addresses_only() -> None:
    over = interpolate(yaml.load(SECURE_HOSTNET.read_text(), Loader=_ComposeLoader), HOSTNET_PORTS)
    assert set(over["services"]) == {"kafka", "topic"}
    kafka = environment(over["services"]["kafka"])
    assert kafka["KAFKA_LISTENERS"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://127.0.0.1:19092"
    assert not re.search(r"\b(kafka|localhost):\d", yaml.safe_dump(over))


@pytest.mark.skipif(
    not COMPOSE_SPEC_TOOL.exists(), reason="no Go here: install.sh builds compose-go's validator when it can"
)
def test_compose_go_loads_the_secured_project(tmp_path: Path) -> None:
    project = compose_go(tmp_path, COMPOSE, SECURE)
    assert {"kafka-secrets", "kafka-storage"} <= set(project["services"])
