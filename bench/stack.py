"""The whole pipeline started with `devicestream up` on free ports in a temp data folder; stopped
(always) by SIGTERM to the launcher, as `devicestream down` does, with any survivor killed by group."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import PY, StageError, wait_until
from contract.launcher import LauncherState
from contract.layout import DataLayout
from devicestream.paths import REPO_ROOT
from devicestream.processes import (
    ProcessIdentity,
    free_ports,
    kill_group,
    log_tail,
    runs,
    start_in_own_group,
    stop_process,
)


@dataclass
class Stack:
    data: Path
    log: Path
    proc: subprocess.Popen
    ports: dict[str, int]
    #: the highest resident memory seen per component (process tree, JVM children included), bytes
    peak_rss: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def launcher_state(self) -> LauncherState | None:
        return LauncherState.read(DataLayout(self.data).launcher_state)

    def component_pids(self) -> dict[str, int]:
        state = self.launcher_state()
        comps = state.components if state else {}
        return {name: c.pid for name, c in comps.items() if c.pid}

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise StageError(f"`devicestream up` exited with {self.proc.returncode}:\n{log_tail(self.log)}")

    def _per_component(self, measure: Callable[[psutil.Process], float]) -> dict[str, float]:
        """`measure` summed over each component's process tree (JVM children included)."""
        out: dict[str, float] = {}
        for name, pid in self.component_pids().items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                for q in [p, *p.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += measure(q)
            out[name] = total
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each component."""
        return self._per_component(lambda q: sum(q.cpu_times()[:2]))

    def verify(self, wait_s: float, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """`devicestream verify --wait <wait_s> --json` against this stack (TimeoutExpired after `timeout_s`).
        Its temporary files go beside the data folder, which the stage removes: a verify killed at the
        timeout cannot leave them behind (they took 12 GB once)."""
        tmp = self.data.parent / "verify-tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DEVICESTREAM_DATA_DIR": str(self.data),
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports['kafka']}",
            "TMPDIR": str(tmp),
        }
        return subprocess.run(
            [PY, "-m", "devicestream", "verify", "--wait", str(wait_s), "--json"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def sample_rss(self) -> dict[str, int]:
        """Each component's resident memory now (process tree, bytes); also kept in peak_rss."""
        now = {name: int(rss) for name, rss in self._per_component(lambda q: q.memory_info().rss).items()}
        for name, rss in now.items():
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
        return now


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
    leaders: dict[str, ProcessIdentity] = {}
    try:

        def ready() -> bool:
            st.check_alive()
            leaders.update(_leaders(st))
            return "all components ready" in log.read_text(errors="replace")

        wait_until(ready, ready_s, "`devicestream up` to report all components ready", interval_s=0.25, logs=[log])
        yield st
    finally:
        leaders.update(_leaders(st))
        _stop(proc, leaders)


def _leaders(st: Stack) -> dict[str, ProcessIdentity]:
    state = st.launcher_state()
    comps = state.components if state else {}
    found = {name: ProcessIdentity.from_record(c.leader) for name, c in comps.items()}
    return {name: leader for name, leader in found.items() if leader is not None}


def _stop(proc: subprocess.Popen, leaders: dict[str, ProcessIdentity], timeout_s: float = 120) -> None:
    """SIGTERM to the launcher, as `devicestream down` does (it stops its components in order); what
    it left behind (it was killed) goes now, each group only if its leader is still that process."""
    stop_process(proc, timeout_s)
    for leader in leaders.values():
        kill_group(leader)
    with contextlib.suppress(StageError):
        wait_until(lambda: not any(runs(leader.pid) for leader in leaders.values()), 10, "the components to exit")
