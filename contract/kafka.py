"""How every devicestream component connects to Kafka when the cluster is secured: one settings model
(security protocol, SASL mechanism and credentials, CA, client certificate, hostname checking) read
from the environment under shared KAFKA_* names. This is the document only; its mappings to each
client library's options, and every Kafka call, are in kafka_io/ (clients.py for the Python clients,
java.py for Spark's Kafka source, the JVM admin client and Kafka's own tools).

PLAINTEXT (the default) maps to nothing, so an unsecured cluster is connected to exactly as before.
The password is a SecretStr: it is in no repr, log line or error message; only the kafka_io/
mappings hand it to the client library."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


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
