"""How every devicestream component connects to Kafka when the cluster is secured: one settings model
(security protocol, SASL mechanism and credentials, CA, client certificate, hostname checking) read
from the environment under shared KAFKA_* names, and one mapping per client library:

- `aiokafka_options`: keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient
  (generator, gateway probes, `devicestream verify`, the launcher's topic creation);
- `spark_kafka_options`: the Kafka source's `kafka.*` options (spark_job);
- `client_properties`: a client.properties for Kafka's own Java tools (bench, the broker's admin).

PLAINTEXT (the default) maps to nothing, so an unsecured cluster is connected to exactly as before.
The password is a SecretStr: it is in no repr, log line or error message; only the mappings above
hand it to the client library."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_LOGIN_MODULES: dict[str, str] = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _env(name: str) -> AliasChoices:
    """Read from exactly `name` (the field is named the same in lower case, for keyword arguments)."""
    return AliasChoices(name, name.lower())


class KafkaSecurity(BaseSettings):
    """The Kafka client security settings every component shares (plain KAFKA_* names, no prefix)."""

    # hide_input_in_errors: a validation error must not echo the environment (the password) back.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True)

    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias=_env("KAFKA_SECURITY_PROTOCOL"),
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed Kafka: SASL_SSL).",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512",
        validation_alias=_env("KAFKA_SASL_MECHANISM"),
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (used with SASL_PLAINTEXT / SASL_SSL).",
    )
    kafka_sasl_username: str = Field(
        default="",
        validation_alias=_env("KAFKA_SASL_USERNAME"),
        description="SASL user name (Confluent Cloud: the API key).",
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SASL_PASSWORD_FILE"),
        description="A file holding the SASL password (a container secret), read at startup when "
        "KAFKA_SASL_PASSWORD is empty: the password stays out of the environment.",
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=_env("KAFKA_SASL_PASSWORD"),
        validate_default=True,
        description="SASL password (Confluent Cloud: the API secret). Never logged or shown.",
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CA_FILE"),
        description="PEM file of the CA(s) that signed the brokers' certificates. Empty: the system trust store.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CERT_FILE"),
        description="PEM client certificate, for clusters that require TLS client authentication (mTLS).",
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_KEY_FILE"),
        description="PEM (unencrypted PKCS#8) private key of KAFKA_SSL_CERT_FILE.",
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        validation_alias=_env("KAFKA_SSL_CHECK_HOSTNAME"),
        description="Check that each broker's certificate names the host connected to (keep true).",
    )

    @field_validator("kafka_sasl_password")
    @classmethod
    def _password_from_file(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        path = info.data.get("kafka_sasl_password_file")
        if value.get_secret_value() or path is None:
            return value
        try:
            return SecretStr(Path(path).read_text().rstrip("\r\n"))
        except OSError as e:
            raise ValueError(f"KAFKA_SASL_PASSWORD_FILE={path} cannot be read: {e.strerror}") from None

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.uses_sasl and not (self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} "
                "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together: set both or neither")
        files = {"KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file, "KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file}
        files["KAFKA_SSL_KEY_FILE"] = self.kafka_ssl_key_file
        set_files = [name for name, path in files.items() if path is not None]
        if set_files and not self.uses_ssl:
            raise ValueError(
                f"{', '.join(set_files)} only apply to SSL or SASL_SSL, "
                f"but KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        return self

    @property
    def uses_ssl(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def kafka_security(self) -> KafkaSecurity:
        """Just these settings (also on every component's settings class, which inherits them)."""
        return KafkaSecurity.model_construct(**{f: getattr(self, f) for f in KafkaSecurity.model_fields})

    def describe(self) -> str:
        """One line for logs and status pages: protocol, mechanism, user, CA; never the password."""
        parts = [self.kafka_security_protocol]
        if self.uses_sasl:
            parts.append(f"{self.kafka_sasl_mechanism} as {self.kafka_sasl_username}")
        if self.uses_ssl:
            parts.append(f"CA {self.kafka_ssl_ca_file}" if self.kafka_ssl_ca_file else "system CAs")
            if self.kafka_ssl_cert_file:
                parts.append(f"client cert {self.kafka_ssl_cert_file}")
            if not self.kafka_ssl_check_hostname:
                parts.append("hostname not checked")
        return ", ".join(parts)


PLAINTEXT = KafkaSecurity.model_construct(
    **{name: f.get_default(call_default_factory=True) for name, f in KafkaSecurity.model_fields.items()}
)


# ---- aiokafka --------------------------------------------------------------------------------


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
    client options, security included. (aiokafka is imported here, not at module import: the Spark
    job reads this module for its own options.)"""
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_options(security or PLAINTEXT), **options)


def make_consumer(bootstrap: str, security: KafkaSecurity | None = None, **options: Any) -> Any:
    """Every aiokafka consumer of devicestream that reads the topic by hand (no group, no commits)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_options(security or PLAINTEXT), **options
    )


# ---- Kafka's Java client (Spark's Kafka source, Kafka's tools) ---------------------------------


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


# ---- errors ------------------------------------------------------------------------------------


def explain_error(exc: BaseException, sec: KafkaSecurity) -> str:
    """One line saying why a Kafka connection failed, for logs, /status and startup errors. It names
    the cause a user can fix (credentials, CA, protocol) and never contains the password."""
    text = str(exc) if type(exc).__name__ in str(exc) else f"{type(exc).__name__}: {exc}".rstrip(": ")
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = " ".join(type(x).__name__ for x in chain)
    messages = " ".join(str(x) for x in chain)
    if "SaslAuthenticationFailed" in names or "Authentication failed" in messages:
        text = (
            f"authentication failed: the broker rejected the {sec.kafka_sasl_mechanism} credentials of user "
            f"{sec.kafka_sasl_username!r} (check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM)"
        )
    elif any(isinstance(x, ssl.SSLCertVerificationError) for x in chain) or "CERTIFICATE_VERIFY_FAILED" in messages:
        detail = next((x.verify_message for x in chain if isinstance(x, ssl.SSLCertVerificationError)), "")
        ca = str(sec.kafka_ssl_ca_file) if sec.kafka_ssl_ca_file else "the system CAs"
        text = (
            f"TLS certificate not trusted ({detail or 'certificate verify failed'}): the broker's certificate "
            f"is not signed by {ca} or does not name this host (check KAFKA_SSL_CA_FILE)"
        )
    elif any(isinstance(x, ssl.SSLError) for x in chain):
        text = f"TLS handshake failed: {exc} (check KAFKA_SECURITY_PROTOCOL: does this listener speak TLS?)"
    elif "UnsupportedSaslMechanism" in names:
        text = f"the broker does not offer SASL mechanism {sec.kafka_sasl_mechanism} (check KAFKA_SASL_MECHANISM)"
    return _redact(text, sec)


def _redact(text: str, sec: KafkaSecurity) -> str:
    secret = sec.kafka_sasl_password.get_secret_value()
    return text.replace(secret, "**********") if secret else text


async def connection_failure(bootstrap: str, sec: KafkaSecurity, timeout_s: float = 5.0) -> str | None:
    """Open one connection to a bootstrap server the way the clients do (TCP, TLS, SASL) and say why
    it fails, or None when one server lets us in. aiokafka's clients only log the cause of a failed
    bootstrap ("Unable to bootstrap from ..."); this gets the cause back for the one-line error."""
    from aiokafka.conn import create_conn  # only the Python components need it

    opts = aiokafka_options(sec)
    reasons = []
    for server in [s.strip() for s in bootstrap.split(",") if s.strip()]:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host or "127.0.0.1", int(port), request_timeout_ms=int(timeout_s * 1000), **opts), timeout_s
            )
        except TimeoutError:
            reasons.append(f"{server}: no answer within {timeout_s:g}s")
            continue
        except Exception as e:  # OSError, ssl.SSLError, KafkaError: each explained below
            if isinstance(e, ConnectionError) and "closed" not in str(e).lower():
                reasons.append(f"{server}: unreachable ({e})")
            elif "closed" in str(e).lower() and sec.kafka_security_protocol != "SASL_SSL":
                reasons.append(
                    f"{server}: the broker closed the connection during the handshake "
                    f"(KAFKA_SECURITY_PROTOCOL={sec.kafka_security_protocol}: does the listener expect TLS or SASL?)"
                )
            else:
                reasons.append(f"{server}: {explain_error(e, sec)}")
            continue
        conn.close()
        return None
    if len(reasons) == 1:  # the caller names the one server already
        reasons = [reasons[0].split(": ", 1)[1]]
    return _redact("; ".join(reasons), sec) if reasons else "KAFKA_BOOTSTRAP_SERVERS is empty"


async def failure_reason(exc: BaseException, bootstrap: str, sec: KafkaSecurity, timeout_s: float = 5.0) -> str:
    """The one-line cause of a Kafka client's failure `exc`: for a failed bootstrap (whose cause
    aiokafka only logs) the cause found by `connection_failure`, else `explain_error(exc)`."""
    if "Unable to bootstrap" in str(exc) or type(exc).__name__ == "KafkaConnectionError":
        with contextlib.suppress(Exception):
            found = await connection_failure(bootstrap, sec, timeout_s)
            if found:
                return found
    return explain_error(exc, sec)
