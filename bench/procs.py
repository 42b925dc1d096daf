"""Processes the benchmarks start: an embedded broker, component services, py-spy. Every one is
started in its own process group and stopped by the caller (context managers, finally)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import PY, StageError, wait_until
from contract.kafka import PLAINTEXT, KafkaSecurity
from devicestream.kafka_broker import KafkaCluster, start_node
from devicestream.paths import REPO_ROOT
from devicestream.processes import free_ports, log_tail, start_in_own_group, stop_process
from kafka_io.admin import ensure_topic, wait_until_ready


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    log: Path
    proc: subprocess.Popen
    security: KafkaSecurity = PLAINTEXT  # how the bench's clients and Kafka's tools connect

    def topic(self, name: str, partitions: int = 3) -> str:
        asyncio.run(ensure_topic(self.bootstrap, name, partitions, 1, security=self.security))
        return name


@contextlib.contextmanager
def broker(base: Path, heap: str = "1g") -> Iterator[Broker]:
    """A single-node KRaft broker on free ports with its data under `base`."""
    port, cport = free_ports(2)
    cluster = KafkaCluster.single(base / "kafka", port, cport, heap=heap)
    node = cluster.nodes[0]
    log = base / "logs" / "kafka.log"
    proc = start_node(cluster, node, log)
    try:
        try:
            asyncio.run(wait_until_ready(cluster.bootstrap_servers, 90, alive=lambda: proc.poll() is None))
        except Exception as e:
            raise StageError(f"the bench broker did not start: {e}\n{log_tail(log)}") from e
        yield Broker(cluster.bootstrap_servers, log, proc, cluster.client_security)
    finally:
        stop_process(proc)


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    base_url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise StageError(f"{self.name} exited with {self.proc.returncode}; log {self.log}:\n{log_tail(self.log)}")


@contextlib.contextmanager
def service(
    name: str, module: str, port: int, env: dict[str, str], log: Path, ready_s: float = 60, ready_path: str = "/readyz"
) -> Iterator[Service]:
    """`python -m module` with `env` (on top of ours), ready once GET `ready_path` answers 200."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    proc = start_in_own_group([PY, "-m", module], log, env=env, cwd=REPO_ROOT)
    svc = Service(name, proc, f"http://127.0.0.1:{port}", log)
    try:

        def ready() -> bool:
            svc.check_alive()
            try:
                return httpx.get(f"{svc.base_url}{ready_path}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, ready_s, f"{name} to be ready", interval_s=0.2, logs=[log])
        yield svc
    finally:
        stop_process(proc, timeout_s=30)


@contextlib.contextmanager
def py_spy(pid: int, out: Path, duration_s: float) -> Iterator[Path]:
    """Sample `pid` (speedscope format) while the block runs; the file is written when it ends."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(REPO_ROOT / ".venv" / "bin" / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--format",
        "speedscope",
        "--output",
        str(out),
        "--duration",
        str(max(1, int(duration_s))),
        "--rate",
        "100",
        "--subprocesses",
    ]
    proc = start_in_own_group(cmd, out.with_suffix(".py-spy.log"))
    try:
        yield out
    finally:
        # py-spy writes what it has on Ctrl-C
        stop_process(proc, timeout_s=30, sig=signal.SIGINT)
