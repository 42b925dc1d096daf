"""One embedded broker node as a process of the caller's own: started ready within a deadline (or an
error holding its log tail), stopped, restarted, and asked for topics. The tests' broker fixtures
and the bench use it; `devicestream up` supervises its broker through the launcher instead."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contract.kafka import KafkaSecurity
from devicestream.kafka_broker import KafkaCluster, ensure_topic, start_node, wait_until_ready
from devicestream.processes import free_ports, log_tail, stop_process


class BrokerStartError(RuntimeError):
    """The node exited or was not ready in time; the message ends with its log tail."""


@dataclass
class BrokerProcess:
    cluster: KafkaCluster
    log_file: Path
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def security(self) -> KafkaSecurity:
        """How clients connect: PLAINTEXT, or SASL_SSL for a cluster made with `security`."""
        return self.cluster.client_security

    def start(self, deadline_s: float = 90.0) -> None:
        node = self.cluster.nodes[0]
        proc = self.proc = start_node(self.cluster, node, self.log_file)
        try:
            alive = lambda: proc.poll() is None  # noqa: E731
            asyncio.run(wait_until_ready(self.bootstrap, deadline_s, alive=alive, security=self.security))
        except Exception as e:
            raise BrokerStartError(f"{e}\n--- broker log tail ({self.log_file}):\n{log_tail(self.log_file)}") from e

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def topic(self, name: str, partitions: int = 3) -> str:
        """`name`, created with `partitions` if it does not exist."""
        asyncio.run(ensure_topic(self.bootstrap, name, partitions, 1, security=self.security))
        return name

    def new_topic(self, partitions: int = 3, prefix: str = "t") -> str:
        """A topic of a fresh unique name."""
        return self.topic(f"{prefix}-{uuid.uuid4().hex[:10]}", partitions)


@contextlib.contextmanager
def single_broker(base: Path, **cluster_kw: object) -> Iterator[BrokerProcess]:
    """A started single-node KRaft broker on free ports, its data and log under `base` (`cluster_kw`:
    KafkaCluster's, e.g. heap, security); stopped after."""
    port, cport = free_ports(2)
    broker = BrokerProcess(KafkaCluster.single(base / "kafka", port, cport, **cluster_kw), base / "kafka.log")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
