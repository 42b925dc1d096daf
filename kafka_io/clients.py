"""The aiokafka clients of devicestream, the one place they are built: the TLS context and the
keyword arguments a `KafkaSecurity` (contract/kafka.py) maps to, for AIOKafkaProducer /
AIOKafkaConsumer / AIOKafkaAdminClient (generator, gateway probes, `devicestream verify`, the
launcher's topic creation). PLAINTEXT maps to nothing. The password leaves its SecretStr only here."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from contract.kafka import PLAINTEXT, KafkaSecurity


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context of a Python client: the CA file (or the system CAs), the client certificate
    when set, certificates always verified, the host name checked unless turned off."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(sec.kafka_ssl_ca_file) if sec.kafka_ssl_ca_file else None
    )
    if sec.kafka_ssl_cert_file is not None:
        ctx.load_cert_chain(str(sec.kafka_ssl_cert_file), str(sec.kafka_ssl_key_file))
    ctx.check_hostname = sec.kafka_ssl_check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def aiokafka_options(sec: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client ({} for PLAINTEXT)."""
    if sec.kafka_security_protocol == "PLAINTEXT":
        return {}
    opts: dict[str, Any] = {"security_protocol": sec.kafka_security_protocol}
    if sec.uses_ssl:
        opts["ssl_context"] = ssl_context(sec)
    if sec.uses_sasl:
        opts["sasl_mechanism"] = sec.kafka_sasl_mechanism
        opts["sasl_plain_username"] = sec.kafka_sasl_username
        opts["sasl_plain_password"] = sec.kafka_sasl_password.get_secret_value()
    return opts


def make_admin(bootstrap: str, security: KafkaSecurity | None = None, **options: Any) -> Any:
    """Every aiokafka admin client of devicestream (launcher, generator, verify): the one place for
    client options, security included."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_options(security or PLAINTEXT), **options)


def make_consumer(bootstrap: str, security: KafkaSecurity | None = None, **options: Any) -> Any:
    """Every aiokafka consumer of devicestream that reads the topic by hand (no group, no commits)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_options(security or PLAINTEXT), **options
    )
