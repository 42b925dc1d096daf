"""The secured compose deployment's one-shot init (compose.secure.yaml's `kafka-secrets` service):
the CA, the broker's certificate and the SCRAM-SHA-512 user, made once into the secrets volume the
way `devicestream up --secure` makes them (devicestream/kafka_tls.py), then laid out per reader so
that each container reads only what it needs, from files (never from its environment):

  <dir>/ca.pem                the CA every client trusts (KAFKA_SSL_CA_FILE); world-readable
  <dir>/ca/                   kafka_tls's own files (ca.key, credentials.json...): root only
  <dir>/broker/   (uid 1000)  broker.pem (PEM keystore: key + certificate), jaas.conf (the broker's
                              own SCRAM login, -Djava.security.auth.login.config), password (the
                              SCRAM user written into the storage when it is formatted),
                              client.properties (Kafka's tools: the topic service, the healthcheck)
  <dir>/client/   (uid 10001) password (KAFKA_SASL_PASSWORD_FILE of the generator, Spark, the gateway)

Run again, it keeps what exists (the same CA, certificate and password). Usage:
`python -m devicestream.compose_secrets /secrets [--host kafka] [--broker-uid 1000] [--client-uid 10001]`."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from devicestream.kafka_tls import ensure_broker_security
from kafka_io.java import client_properties, jaas_config

log = logging.getLogger(__name__)


def _write(path: Path, data: bytes, uid: int, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(tmp, uid, uid)
    tmp.chmod(mode)
    tmp.replace(path)


def _private_dir(path: Path, uid: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    path.chmod(0o500)


def make_secrets(root: Path, hosts: list[str], broker_uid: int, client_uid: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    sec = ensure_broker_security(root / "ca", hosts)  # root-only: the CA key stays here
    shutil.copyfile(sec.ca_file, root / "ca.pem")
    (root / "ca.pem").chmod(0o444)
    password = sec.password.get_secret_value().encode()
    client = sec.client().model_copy(update={"kafka_ssl_ca_file": root / "ca.pem"})

    broker = root / "broker"
    _private_dir(broker, broker_uid)
    _write(broker / "broker.pem", sec.keystore_file.read_bytes(), broker_uid, 0o400)
    _write(broker / "jaas.conf", f"KafkaServer {{\n  {jaas_config(client)}\n}};\n".encode(), broker_uid, 0o400)
    _write(broker / "password", password, broker_uid, 0o400)
    _write(broker / "client.properties", client_properties(client).encode(), broker_uid, 0o400)

    clients = root / "client"
    _private_dir(clients, client_uid)
    _write(clients / "password", password, client_uid, 0o400)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devicestream.compose_secrets", description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path, help="the secrets volume's mount point")
    p.add_argument("--host", action="append", default=[], help="a name the broker is reached by (repeatable)")
    p.add_argument("--broker-uid", type=int, default=1000, help="the Kafka image's user (apache/kafka: 1000)")
    p.add_argument("--client-uid", type=int, default=10001, help="our images' user (docker/*.Dockerfile)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make_secrets(args.dir, args.host or ["kafka"], args.broker_uid, args.client_uid)
    log.info("CA, broker certificate and SCRAM user ready", extra={"path": str(args.dir)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
