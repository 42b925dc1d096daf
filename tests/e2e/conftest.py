"""One real stack for the end-to-end scenarios, started by the launcher exactly as a user starts it
(`devicestream up`), on free ports in a temporary data folder, stopped with `devicestream down`.

The merger's folder sits on its own tmpfs when this machine lets us mount one (root), so the disk
scenario can make it full and give the space back without touching the real disk."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from contract.api import GeneratorStatus, Run
from contract.launcher import ComponentRecord, LauncherState
from contract.layout import DataLayout
from contract.merger_status import MergerStatus
from contract.pipeline_status import PipelineStatus
from contract.verify_report import VerifyReport
from devicestream.processes import free_ports, log_tail
from tests.documents import generator_status, merger_status
from tests.helpers import devicestream_cli, start_up, stop_up, wait_for, wait_up
from tests.tiers import starts_processes


@dataclass
class Stack:
    data: Path
    env: dict[str, str]
    out_log: Path
    proc: subprocess.Popen | None = None
    tmpfs: Path | None = None
    runs: list[Run] = field(default_factory=list)

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def generator(self) -> str:
        return f"http://127.0.0.1:{self.env['GENERATOR_PORT']}"

    @property
    def merger(self) -> str:
        return f"http://127.0.0.1:{self.env['MERGER_PORT']}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.env['DEVICESTREAM_KAFKA_PORT']}"

    def logs(self, *names: str) -> list[Path]:
        names = names or ("kafka", "spark", "merger", "generator", "gateway")
        return [self.out_log, *(self.data / "logs" / f"{n}.log" for n in names)]

    # ---- the launcher's view -----------------------------------------------------------------
    def components(self) -> dict[str, ComponentRecord]:
        state = LauncherState.read(DataLayout(self.data).launcher_state)
        assert state is not None, f"no launcher.json in {self.data}"
        return state.components

    def pid(self, name: str) -> int:
        pid = self.components()[name].pid
        assert pid is not None, f"{name} has no pid yet"
        return pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal the component's whole process group (a crash takes the JVM and workers too)."""
        pid = self.pid(name)
        os.killpg(pid, sig)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 240) -> None:
        def ready_again() -> bool:
            c = self.components()[name]
            return c.state == "ready" and c.pid != old_pid

        wait_for(ready_again, timeout, f"{name} restarted by the launcher and ready", logs=self.logs(name))

    # ---- driving the generator ---------------------------------------------------------------
    def start_run(self, **body: object) -> Run:
        r = httpx.post(f"{self.gateway}/generator/start", json=body, timeout=10)
        assert r.status_code == 202, r.text
        run = Run.model_validate_json(r.content)
        self.runs.append(run)
        return run

    def generator_status(self) -> GeneratorStatus:
        return generator_status(self.generator)

    def merger_status(self) -> MergerStatus:
        return merger_status(self.merger)

    def wait_run_ended(self, timeout: float = 180) -> GeneratorStatus:
        def ended() -> GeneratorStatus | None:
            s = self.generator_status()
            return s if s.state in ("completed", "stopped", "failed", "idle") else None

        return wait_for(ended, timeout, "the generator run to end", logs=self.logs("generator"), interval=0.5)

    def status(self) -> PipelineStatus:
        """The gateway's /status, read with its contract model."""
        return PipelineStatus.model_validate_json(httpx.get(f"{self.gateway}/status", timeout=15).content)

    # ---- the proof ---------------------------------------------------------------------------
    def verify(self, wait_s: float = 180) -> VerifyReport:
        res = devicestream_cli("verify", "--json", "--wait", str(wait_s), env=self.env, timeout=wait_s + 300)
        try:
            report = VerifyReport.model_validate_json(res.stdout)
        except ValidationError:
            raise AssertionError(f"verify did not answer: {res.stdout}\n{res.stderr}") from None
        if not report.ok:
            tails = "\n".join(f"--- {p}:\n{log_tail(p, 25)}" for p in self.logs())
            raise AssertionError(f"verify found problems: {report.to_json()}\n{tails}")
        return report


def _mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(path)], capture_output=True)
    return res.returncode == 0


@pytest.fixture(scope="module")
@starts_processes
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e")) as st:
        yield st


@contextlib.contextmanager
def running_stack(base: Path, up_args: Sequence[str] = (), **settings: str) -> Iterator[Stack]:
    """`devicestream up *up_args` on free ports with its data folder in `base`; `devicestream down` after.
    `settings`: more environment for the launcher, which passes it to the components (e.g.
    MERGER_READ_AHEAD_BYTES)."""
    data = base / "data"
    kport, cport, gw, gen, mer = free_ports(5)
    env = {
        "DEVICESTREAM_DATA_DIR": str(data),
        "DEVICESTREAM_KAFKA_PORT": str(kport),
        "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(cport),
        "GATEWAY_PORT": str(gw),
        "GENERATOR_PORT": str(gen),
        "MERGER_PORT": str(mer),
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "DEVICESTREAM_COMPONENTS": "kafka,spark,merger,generator,gateway",
        **settings,
    }
    st = Stack(data=data, env=env, out_log=base / "up.log")
    merger_dir = data / "merger"
    if _mount_tmpfs(merger_dir):
        st.tmpfs = merger_dir
    st.proc = start_up(env, st.out_log, up_args)
    try:
        wait_up(st.proc, st.out_log, 420, logs=st.logs())
        yield st
    finally:
        stop_up(st.proc, env, data)
        if st.tmpfs:
            deadline = time.monotonic() + 30
            while subprocess.run(["umount", str(st.tmpfs)], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    subprocess.run(["umount", "-l", str(st.tmpfs)], capture_output=True)
                    break
                time.sleep(0.5)
