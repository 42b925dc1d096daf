"""`devicestream up`'s checks before it starts anything: each failure is a LaunchError that says
what to fix (a data folder that is not writable, a port in use, a stack already running from this
data folder, Kafka storage that a secured broker could not log in to)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from contract.launcher import LauncherState
from devicestream.kafka_broker import BrokerError, KafkaCluster
from devicestream.settings import LauncherSettings
from devicestream.stack_client import describe_orphans, orphans, running_launcher


class LaunchError(RuntimeError):
    """The stack could not be started; the message says what to fix."""


def check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise LaunchError(
            f"the data folder {data_dir} is not writable ({e.strerror}): fix its permissions or point "
            f"DEVICESTREAM_DATA_DIR at a writable folder"
        ) from e


def check_port_free(host: str, port: int, setting: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise LaunchError(
                f"port {host}:{port} is already in use ({e.strerror}): stop what holds it "
                f"(`devicestream down` if it is an earlier stack) or set {setting}"
            ) from e


def check_no_stack(state_file: Path) -> None:
    """No launcher, nor a component left by a killed one, runs from this data folder; a stale record
    of a stack that is gone is removed."""
    state = LauncherState.read(state_file)
    if other := running_launcher(state):
        raise LaunchError(
            f"a stack is already running from this data folder (launcher pid {other.pid}): `devicestream down` stops it"
        )
    if found := orphans(state):
        raise LaunchError(
            f"components of an earlier stack still run without their launcher: {describe_orphans(found)}; "
            "`devicestream down` stops them"
        )
    state_file.unlink(missing_ok=True)


def check_kafka_nodes(cluster: KafkaCluster) -> None:
    """Each node's storage fits its security, its ports are free."""
    for node in cluster.nodes:
        try:
            cluster.check_storage_security(node)
        except BrokerError as e:
            raise LaunchError(str(e)) from None
        check_port_free(node.host, node.port, "DEVICESTREAM_KAFKA_PORT")
        check_port_free(node.host, node.controller_port, "DEVICESTREAM_KAFKA_CONTROLLER_PORT")


def check_service_ports(settings: LauncherSettings) -> None:
    """The port of each service to be started is free."""
    wanted = settings.component_list()
    for name, port, setting in (
        ("merger", settings.merger_port, "MERGER_PORT"),
        ("generator", settings.generator_port, "GENERATOR_PORT"),
        ("gateway", settings.gateway_port, "GATEWAY_PORT"),
    ):
        if name in wanted:
            check_port_free(settings.host, port, setting)
