"""The whole pipeline started with `devicestream up` on free ports in a temp data folder; stopped
(always) by SIGTERM to the launcher, as `devicestream down` does, with any survivor killed by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import PY, StageError, wait_until
from contract.files import read_json
from devicestream.paths import REPO_ROOT
from devicestream.processes import free_ports, log_tail, start_in_own_group


@dataclass
class Stack:
    data: Path
    log: Path
    proc: subprocess.Popen
    ports: dict[str, int]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def component_pids(self) -> dict[str, int]:
        doc = read_json(self.data / "run" / "launcher.json")
        comps = doc.get("components", {}) if isinstance(doc, dict) else {}
        return {k: int(v["pid"]) for k, v in comps.items() if v.get("pid")}

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise StageError(f"`devicestream up` exited with {self.proc.returncode}:\n{log_tail(self.log)}")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each component's process tree (JVM children included)."""
        out: dict[str, float] = {}
        for name, pid in self.component_pids().items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                for q in [p, *p.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = q.cpu_times()
                        total += t.user + t.system
            out[name] = total
        return out


@contextlib.contextmanager
def stack(data: Path, extra_env: dict[str, str] | None = None, ready_s: float = 300) -> Iterator[Stack]:
    kport, cport, gen, mer, gw = free_ports(5)
    ports = {"kafka": kport, "generator": gen, "merger": mer, "gateway": gw}
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DEVICESTREAM_DATA_DIR": str(data),
        "DEVICESTREAM_KAFKA_PORT": str(kport),
        "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(cport),
        "GENERATOR_PORT": str(gen),
        "MERGER_PORT": str(mer),
        "GATEWAY_PORT": str(gw),
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("DEVICESTREAM_COMPONENTS", None)
    log = data.parent / f"{data.name}-up.log"
    log.unlink(missing_ok=True)  # readiness is read from this log: none of an earlier run
    proc = start_in_own_group([PY, "-m", "devicestream", "up"], log, env=env, cwd=REPO_ROOT)
    st = Stack(data, log, proc, ports)
    pids: dict[str, int] = {}
    try:

        def ready() -> bool:
            st.check_alive()
            pids.update(st.component_pids())
            return "all components ready" in log.read_text(errors="replace")

        wait_until(ready, ready_s, "`devicestream up` to report all components ready", interval_s=0.25, logs=[log])
        yield st
    finally:
        pids.update(st.component_pids())
        _stop(proc, pids)


def _stop(proc: subprocess.Popen, pids: dict[str, int], timeout_s: float = 120) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # The launcher stops its components; anything it left behind (it was killed) goes now.
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and _not_zombie(p) for p in pids.values()):
        time.sleep(0.1)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
