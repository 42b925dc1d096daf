"""`devicestream up`: start the pipeline on this machine, in order, each component after the previous
one is ready; supervise them (a component that dies is reported and restarted with backoff); stop
them in reverse order on Ctrl-C / SIGTERM, gracefully first.

broker -> topic -> Spark job -> merger -> generator -> gateway

The pieces: devicestream/preflight.py (the checks before anything starts), specs.py (what each
component runs and how its readiness is judged), supervise.py (starting, restarting and stopping
the processes; launcher.json) and stack_client.py (`status` and `down` from another shell).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import httpx
from aiokafka.errors import KafkaError

from contract.kafka import KafkaSecurity
from devicestream.kafka_broker import KafkaCluster
from devicestream.kafka_tls import ensure_broker_security
from devicestream.preflight import check_data_dir, check_kafka_nodes, check_no_stack, check_service_ports
from devicestream.settings import LauncherSettings
from devicestream.specs import build_specs, child_env
from devicestream.supervise import Supervisor
from kafka_io.admin import BrokerError, ensure_topic, wait_until_ready
from kafka_io.reachability import failure_reason

Out = Callable[[str], None]


async def up(settings: LauncherSettings, out: Out = print) -> int:
    """Check, start everything in order, run until Ctrl-C / SIGTERM (or a failed start), stop
    everything. Returns the exit status (1: the start failed)."""
    check_data_dir(settings.data_dir)
    check_no_stack(settings.layout.launcher_state)
    cluster = embedded_cluster(settings)
    if cluster is not None:
        check_kafka_nodes(cluster)
    check_service_ports(settings)

    bootstrap = cluster.bootstrap_servers if cluster else settings.require_bootstrap()
    security = cluster.client_security if cluster else settings.kafka_security
    sup = Supervisor(settings, out, env=stack_env(settings, bootstrap, cluster))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stopping.set)

    out(f"devicestream: starting in {settings.data_dir.resolve()} (Ctrl-C stops everything)")
    if cluster is not None and cluster.security is not None:
        out(f"  {'kafka':<10} {'secured':<10} {security.describe()}")
    if cluster is None:
        out(f"  {'kafka':<10} {'external':<10} {bootstrap} ({security.describe()})")

    async def make_topic() -> None:
        await create_topic(settings, bootstrap, security, cluster, out)

    async with httpx.AsyncClient() as client:
        specs = build_specs(settings, client, cluster)
        # the topic once every embedded broker is ready; an external Kafka's before anything starts
        topic_after = specs[len(cluster.nodes) - 1].name if cluster else None
        return await sup.run(specs, make_topic, topic_after)


def embedded_cluster(settings: LauncherSettings) -> KafkaCluster | None:
    """The Kafka nodes this launcher runs (None: Kafka is external or not wanted). With --secure:
    SASL_SSL only, with the CA, keystore and SCRAM user of the data folder."""
    if settings.kafka_bootstrap_servers or "kafka" not in settings.component_list():
        return None
    layout = settings.layout
    security = ensure_broker_security(layout.kafka_dir / "security") if settings.kafka_secure else None
    common = {"heap": settings.kafka_heap, "default_partitions": settings.topic_partitions, "security": security}
    if settings.brokers > 1:
        return KafkaCluster.local(layout.kafka_dir, settings.kafka_port, settings.brokers, **common)
    return KafkaCluster.single(layout.kafka_dir, settings.kafka_port, settings.kafka_controller_port, **common)


def stack_env(settings: LauncherSettings, bootstrap: str, cluster: KafkaCluster | None) -> dict[str, str]:
    """The components' environment; with a secured embedded broker, its client credentials (never printed)."""
    env = child_env(settings, bootstrap)
    if cluster is not None and cluster.security is not None:
        env.update(cluster.security.client_env())
    return env


async def create_topic(
    settings: LauncherSettings, bootstrap: str, security: KafkaSecurity, cluster: KafkaCluster | None, out: Out
) -> None:
    """The events topic, replicated over up to 3 brokers (min.insync.replicas 2 with 3 replicas)."""
    rf = cluster.replication_factor if cluster else 1
    if cluster is not None and len(cluster.nodes) > 1:  # replicas need every broker registered
        await wait_until_ready(bootstrap, settings.ready_timeout_s, min_brokers=len(cluster.nodes), security=security)
    try:
        n = await ensure_topic(
            bootstrap,
            settings.topic,
            settings.topic_partitions,
            rf,
            min_insync_replicas=2 if rf >= 3 else None,
            retention_bytes=settings.topic_retention_bytes,
            segment_bytes=settings.topic_segment_bytes,
            security=security,
        )
    except (KafkaError, OSError) as e:
        reason = await failure_reason(e, bootstrap, security)
        raise BrokerError(f"kafka: cannot create topic {settings.topic} at {bootstrap}: {reason}") from None
    kept = f"; it exists: {settings.topic_partitions} asked for" if n != settings.topic_partitions else ""
    out(f"  {'topic':<10} {'ready':<10} {settings.topic} ({n} partitions{kept}, replication {rf})")
