"""Why a Kafka connection fails, in one line a user can act on (credentials, CA, protocol), and
whether a bootstrap server answers at all: the reachability probes of every component. No line
here ever holds the password."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from aiokafka.conn import create_conn

from contract.kafka import KafkaSecurity
from kafka_io.clients import aiokafka_options


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


async def tcp_probe(bootstrap: str, timeout_s: float = 1.0) -> str | None:
    """None when a TCP connection to a bootstrap server succeeds, else the error: a cheap check, made
    often (the generator's, every second), where `connection_failure` goes through TLS and SASL too."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError) as e:
            errors.append(f"{server}: {e!r}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return "Kafka unreachable: " + "; ".join(errors)
