"""Processes the benchmarks start: an embedded broker, component services, py-spy. Every one is
started in its own process group and stopped by the caller (context managers, finally)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import PY, StageError, wait_until
from devicestream.broker_process import BrokerProcess, BrokerStartError, single_broker
from devicestream.paths import REPO_ROOT
from devicestream.processes import log_tail, start_in_own_group, stop_process

#: the bench's broker is the tests': one harness (devicestream/broker_process.py)
Broker = BrokerProcess


@contextlib.contextmanager
def broker(base: Path, heap: str = "1g") -> Iterator[Broker]:
    """A single-node KRaft broker on free ports with its data and log under `base`."""
    try:
        with single_broker(base, heap=heap) as b:
            yield b
    except BrokerStartError as e:
        raise StageError(f"the bench broker did not start: {e}") from e


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
