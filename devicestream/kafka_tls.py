"""The embedded broker's security material, made once into <data>/kafka/security/ and kept:

- ca.pem / ca.key: a private CA (the clients' KAFKA_SSL_CA_FILE);
- broker.pem: the broker's key and certificate (signed by the CA, names localhost, 127.0.0.1 and the
  machine's host name), a PEM keystore for Kafka (ssl.keystore.type=PEM);
- credentials.json: the SCRAM-SHA-512 user and its random password (owner-only file);
- client.properties: the same for Kafka's own tools, e.g. `kafka-topics.sh --bootstrap-server
  127.0.0.1:9092 --command-config <data>/kafka/security/client.properties --list` (owner-only).

Files holding a key or a password are written 0600. Made with the `cryptography` package."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from contract.kafka import KafkaSecurity
from kafka_io.java import write_client_properties

SCRAM_MECHANISM = "SCRAM-SHA-512"
DEFAULT_USER = "devicestream"
VALID_DAYS = 825


@dataclass(frozen=True)
class BrokerSecurity:
    """Where the embedded broker's material lives, and the one SCRAM user (brokers and clients)."""

    dir: Path
    username: str
    password: SecretStr

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        return self.dir / "broker.pem"

    def client(self) -> KafkaSecurity:
        """The client settings every component uses to reach this broker."""
        return KafkaSecurity.model_construct(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=SCRAM_MECHANISM,
            kafka_sasl_username=self.username,
            kafka_sasl_password=self.password,
            kafka_ssl_ca_file=self.ca_file,
            kafka_ssl_cert_file=None,
            kafka_ssl_key_file=None,
            kafka_ssl_check_hostname=True,
        )

    def client_env(self) -> dict[str, str]:
        """The same as environment variables, for the launcher's children."""
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "KAFKA_SASL_USERNAME": self.username,
            "KAFKA_SASL_PASSWORD": self.password.get_secret_value(),
            "KAFKA_SSL_CA_FILE": str(self.ca_file),
        }


def _private_write(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common_name: str = "devicestream embedded Kafka CA") -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, PKCS#8 key PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digitalSignature, keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def make_server_cert(ca_pem: bytes, ca_key_pem: bytes, hosts: list[str]) -> tuple[bytes, bytes]:
    """A server certificate for `hosts` (DNS names or IP addresses) signed by the CA: (cert PEM, key PEM)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = _key()
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def broker_hosts(extra: list[str] | None = None) -> list[str]:
    return [*(extra or []), "localhost", "127.0.0.1", "::1", socket.gethostname()]


def ensure_broker_security(security_dir: Path, hosts: list[str] | None = None) -> BrokerSecurity:
    """The CA, the broker keystore and the SCRAM credentials in `security_dir`, made on first use and
    reused after that (the broker's SCRAM credentials are written into its storage when formatted)."""
    security_dir.mkdir(parents=True, exist_ok=True)
    security_dir.chmod(0o700)
    ca_file, ca_key = security_dir / "ca.pem", security_dir / "ca.key"
    if not (ca_file.exists() and ca_key.exists()):
        cert, key = make_ca()
        _private_write(ca_key, key)
        ca_file.write_bytes(cert)
    keystore = security_dir / "broker.pem"
    if not keystore.exists():
        cert, key = make_server_cert(ca_file.read_bytes(), ca_key.read_bytes(), broker_hosts(hosts))
        _private_write(keystore, key + cert)
    creds = security_dir / "credentials.json"
    if not creds.exists():
        _private_write(creds, orjson.dumps({"username": DEFAULT_USER, "password": secrets.token_urlsafe(24)}))
    doc = orjson.loads(creds.read_bytes())
    security = BrokerSecurity(security_dir, str(doc["username"]), SecretStr(str(doc["password"])))
    write_client_properties(security.client(), security_dir / "client.properties")
    return security


def embedded_client_security(kafka_dir: Path) -> KafkaSecurity | None:
    """The client settings of the embedded broker in `kafka_dir` when it runs secured (its first
    node's server.properties listens on SASL_SSL), else None: lets `devicestream verify` from another
    shell reach a stack started with --secure without being given the password."""
    props = kafka_dir / "node-1" / "server.properties"
    creds = kafka_dir / "security" / "credentials.json"
    try:
        secured = any(line.startswith("listeners=SASL_SSL://") for line in props.read_text().splitlines())
    except OSError:
        return None
    return ensure_broker_security(kafka_dir / "security").client() if secured and creds.exists() else None
