"""The embedded Kafka: a real Apache Kafka 4.x broker in KRaft combined mode (broker + controller),
run in its own JVM from the Maven Central jars resolved into .jars/kafka.

Configuration is written under <data_dir>/kafka/node-<id>/; storage is formatted on first start
(`kafka.tools.StorageTool format --standalone`, or `--initial-controllers` for a multi-node quorum)
and reused after that, so a restarted broker keeps its data.

With `security` (devicestream/kafka_tls.py) the nodes listen for clients and each other on SASL_SSL
only (SCRAM-SHA-512, a PEM keystore signed by the data folder's CA); the controller listener stays
PLAINTEXT on loopback. The SCRAM user is written into the storage when it is formatted."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contract.kafka import PLAINTEXT, KafkaSecurity
from devicestream.kafka_tls import SCRAM_MECHANISM, BrokerSecurity
from devicestream.paths import RESOURCES, jars_dir
from devicestream.processes import start_in_own_group, stop_process
from kafka_io.admin import BrokerError
from kafka_io.java import jaas_config

log = logging.getLogger(__name__)

JAVA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


#: how long the last node of a multi-node cluster gets after SIGTERM: its controlled shutdown waits
#: for a controller quorum that has gone with the other nodes, so it would only wait out the timeout
LAST_NODE_GRACE_S = 5.0


def new_kafka_uuid() -> str:
    """A random Kafka Uuid in its base64url form. Like Kafka's Uuid.randomUuid, never one starting
    with "-": StorageTool's argument parser would read it as a flag (one id in 64 did, and the
    broker then failed to format its storage)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class BrokerNode:
    node_id: int
    port: int
    controller_port: int
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def controller_address(self) -> str:
        return f"{self.host}:{self.controller_port}"


@dataclass(frozen=True)
class KafkaCluster:
    """One or more combined-mode nodes sharing one metadata quorum, all on this machine."""

    base_dir: Path
    nodes: tuple[BrokerNode, ...]
    heap: str = "512m"
    default_partitions: int = 3
    security: BrokerSecurity | None = None

    @classmethod
    def single(cls, base_dir: Path, port: int, controller_port: int, **kw: object) -> KafkaCluster:
        return cls(base_dir=base_dir, nodes=(BrokerNode(1, port, controller_port),), **kw)  # type: ignore[arg-type]

    @classmethod
    def local(cls, base_dir: Path, first_port: int, count: int, **kw: object) -> KafkaCluster:
        """`count` nodes on consecutive port pairs: broker first_port+2i, controller first_port+2i+1."""
        nodes = tuple(BrokerNode(i + 1, first_port + 2 * i, first_port + 2 * i + 1) for i in range(count))
        return cls(base_dir=base_dir, nodes=nodes, **kw)  # type: ignore[arg-type]

    @classmethod
    def on_ports(cls, base_dir: Path, ports: Sequence[tuple[int, int]], **kw: object) -> KafkaCluster:
        """One node per (broker port, controller port) pair, ids 1..n (tests use free, scattered ports)."""
        nodes = tuple(BrokerNode(i + 1, p, c) for i, (p, c) in enumerate(ports))
        return cls(base_dir=base_dir, nodes=nodes, **kw)  # type: ignore[arg-type]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def client_security(self) -> KafkaSecurity:
        """How clients connect: PLAINTEXT, or SASL_SSL with the data folder's CA and SCRAM user."""
        return self.security.client() if self.security else PLAINTEXT

    def _listener_properties(self, node: BrokerNode) -> dict[str, object]:
        if self.security is None:
            return {
                "listeners": f"PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
                "advertised.listeners": f"PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        sec = self.security
        mech = SCRAM_MECHANISM.lower()
        return {
            "listeners": f"SASL_SSL://{node.address},CONTROLLER://{node.controller_address}",
            "advertised.listeners": f"SASL_SSL://{node.address},CONTROLLER://{node.controller_address}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.sasl_ssl.{mech}.sasl.jaas.config": jaas_config(sec.client()),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": sec.keystore_file,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": sec.ca_file,
            "ssl.client.auth": "none",
        }

    @property
    def replication_factor(self) -> int:
        return min(3, len(self.nodes))

    def node_dir(self, node: BrokerNode) -> Path:
        return self.base_dir / f"node-{node.node_id}"

    # ---- configuration -------------------------------------------------------------------------

    def server_properties(self, node: BrokerNode) -> str:
        rf = self.replication_factor
        min_isr = 2 if rf >= 3 else 1
        quorum = ",".join(n.controller_address for n in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.bootstrap.servers": quorum,
            **self._listener_properties(node),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": self.node_dir(node) / "data",
            "num.partitions": self.default_partitions,
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            "log.retention.hours": 168,
            "unclean.leader.election.enable": "false",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def cluster_id(self) -> str:
        """A Kafka cluster id (base64url UUID), made once and kept beside the data."""
        path = self.base_dir / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cid = new_kafka_uuid()
        path.write_text(cid + "\n")
        return cid

    def _directory_id(self, node: BrokerNode) -> str:
        """The node's metadata log directory id (a Kafka Uuid, base64url), made once and kept."""
        path = self.node_dir(node) / "directory.id"
        if path.exists():
            return path.read_text().strip()
        did = new_kafka_uuid()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(did + "\n")
        return did

    def initial_controllers(self) -> str:
        """The KRaft voter set for `StorageTool format --initial-controllers`: id@host:port:directoryId,..."""
        return ",".join(f"{n.node_id}@{n.host}:{n.controller_port}:{self._directory_id(n)}" for n in self.nodes)

    def _scram_marker(self, node: BrokerNode) -> Path:
        return self.node_dir(node) / "scram-users-formatted"

    def check_storage_security(self, node: BrokerNode) -> None:
        """A secured node needs storage formatted with its SCRAM user (written only at format time)."""
        formatted = (self.node_dir(node) / "data" / "meta.properties").exists()
        if self.security is not None and formatted and not self._scram_marker(node).exists():
            raise BrokerError(
                f"the Kafka storage in {self.node_dir(node)} was formatted without SCRAM users, so a secured "
                "broker could not log in to it: start secured with a new data folder (DEVICESTREAM_DATA_DIR), "
                "or without --secure / DEVICESTREAM_KAFKA_SECURE"
            )

    def config_path(self, node: BrokerNode) -> Path:
        return self.node_dir(node) / "server.properties"

    def prepare(self, node: BrokerNode) -> None:
        """Write the node's configuration and format its storage unless already formatted."""
        d = self.node_dir(node)
        (d / "data").mkdir(parents=True, exist_ok=True)
        self.config_path(node).touch(mode=0o600, exist_ok=True)  # a secured node's holds its SCRAM password
        self.config_path(node).write_text(self.server_properties(node))
        if (d / "data" / "meta.properties").exists():
            self.check_storage_security(node)
            return
        args = ["format", "-t", self.cluster_id(), "-c", str(self.config_path(node)), "--ignore-formatted"]
        if len(self.nodes) == 1:
            args.append("--standalone")
        else:
            # Every node is formatted with the same voter list "id@host:cport:directoryId,...". StorageTool
            # writes this node's entry's directory id into its metadata log dir's meta.properties, which is
            # how the quorum recognises the voter; so each id is made once and kept (directory.id).
            args += ["--initial-controllers", self.initial_controllers()]
        if self.security is not None:
            sec = self.security
            # KIP-900: the SCRAM user the brokers (and clients) log in as, in the bootstrap metadata
            args += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={sec.username},password={sec.password.get_secret_value()}]",
            ]
        cmd = [*self.java_base(node, heap="256m"), STORAGE_TOOL, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, timeout=120)
        if res.returncode != 0:
            out = f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
            if self.security is not None:
                out = out.replace(self.security.password.get_secret_value(), "**********")
            raise BrokerError(
                f"formatting Kafka storage for node {node.node_id} failed (exit {res.returncode}):\n{out}"
            )
        if self.security is not None:
            self._scram_marker(node).touch()
        log.info("formatted kafka storage", extra={"node": node.node_id, "dir": str(d)})

    def java_base(self, node: BrokerNode, heap: str | None = None) -> list[str]:
        heap = heap or self.heap
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={RESOURCES / 'kafka-log4j2.properties'}",
            f"-Dkafka.logs.dir={self.node_dir(node) / 'logs'}",
            "-cp",
            f"{jars_dir('kafka')}/*",
        ]

    def command(self, node: BrokerNode) -> list[str]:
        """The command that runs `node` in the foreground (after `prepare`)."""
        return [*self.java_base(node), JAVA_MAIN, str(self.config_path(node))]


# ---- the nodes as processes ------------------------------------------------------------------


def stop_processes(
    procs: Sequence[subprocess.Popen], timeout_s: float = 20.0, last_grace_s: float = LAST_NODE_GRACE_S
) -> list[int]:
    """Stop the nodes of one cluster, last first, each after the previous has gone: a node's controlled
    shutdown hands its leaderships over through the quorum. The final node cannot (its quorum has
    gone with the others), so it gets `last_grace_s` before SIGKILL instead of waiting for a
    controller that will not answer. Returns the exit codes, in the order given."""
    running = [p for p in procs if p.poll() is None]
    for i, proc in enumerate(reversed(running)):
        last = i == len(running) - 1 and len(running) > 1
        stop_process(proc, last_grace_s if last else timeout_s)
    return [p.returncode for p in procs]


def start_node(cluster: KafkaCluster, node: BrokerNode, log_file: Path) -> subprocess.Popen:
    """Prepare and start `node` in its own process group, logging to `log_file`."""
    cluster.prepare(node)
    return start_in_own_group(cluster.command(node), log_file)
