"""A whole stack started by the launcher (`devicestream up`) on free ports in the test's own data
folder, for the deployment tests (Spark standalone cluster, 3 brokers). It hands back the
end-to-end suite's `Stack` helper, so kills, restarts, generator runs and `verify` work the same way;
unlike the e2e fixture it is per test and takes extra settings (SPARK_MASTER, DEVICESTREAM_BROKERS)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devicestream.processes import free_port_range, free_ports
from tests.e2e.conftest import Stack
from tests.helpers import start_up, stop_up, wait_up
from tests.tiers import starts_processes

LaunchStack = Callable[..., Stack]


def _stop(st: Stack) -> None:
    """`devicestream down`, then make sure nothing of this stack is left (not even a stray JVM)."""
    if st.proc is not None:
        stop_up(st.proc, st.env, st.data)


@pytest.fixture
@starts_processes
def launch_stack(tmp_path: Path) -> Iterator[LaunchStack]:
    """`launch_stack(env, kafka_ports=2, up_args=(), timeout=420)` starts `devicestream up` and waits
    until every component is ready; every stack started is stopped when the test ends."""
    started: list[Stack] = []

    def launch(
        env: dict[str, str] | None = None, *, kafka_ports: int = 2, up_args: tuple[str, ...] = (), timeout: float = 420
    ) -> Stack:
        base = tmp_path / f"stack-{len(started)}"
        base.mkdir()
        data = base / "data"
        kport = free_port_range(kafka_ports)
        gw, gen, mer = free_ports(3)
        full_env = {
            "DEVICESTREAM_DATA_DIR": str(data),
            "DEVICESTREAM_KAFKA_PORT": str(kport),
            "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(kport + 1),
            "GATEWAY_PORT": str(gw),
            "GENERATOR_PORT": str(gen),
            "MERGER_PORT": str(mer),
            "KAFKA_BOOTSTRAP_SERVERS": "",
            "DEVICESTREAM_COMPONENTS": "kafka,spark,merger,generator,gateway",
            **(env or {}),
        }
        st = Stack(data=data, env=full_env, out_log=base / "up.log")
        started.append(st)
        st.proc = start_up(full_env, st.out_log, up_args)
        wait_up(st.proc, st.out_log, timeout, logs=st.logs())
        return st

    try:
        yield launch
    finally:
        for st in reversed(started):
            _stop(st)
