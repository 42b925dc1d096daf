"""`devicestream up | status | down` on a real broker: readiness, restart of a killed component, a
clean stop that leaves no process and frees the ports, and clear refusals."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from contract.launcher import ComponentRecord, LauncherState, ProcessRecord
from contract.layout import DataLayout
from devicestream.processes import free_ports, kill_process, log_tail, runs
from tests.helpers import devicestream_cli, start_up, stop_up, wait_for, wait_up

pytestmark = pytest.mark.integration

_cli = devicestream_cli


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Launched:
    """`devicestream up` run by a test, and its view of the stack (launcher.json)."""

    proc: subprocess.Popen
    data: Path
    out_log: Path

    @property
    def state_file(self) -> Path:
        return DataLayout(self.data).launcher_state

    @property
    def logs(self) -> list[Path]:
        return [self.out_log, self.data / "logs" / "kafka.log"]

    def state(self) -> LauncherState:
        state = LauncherState.read(self.state_file)
        assert state is not None, f"no launcher.json in {self.data}"
        return state

    def kafka(self) -> ComponentRecord:
        return self.state().components["kafka"]


@contextlib.contextmanager
def _launched(env: dict[str, str], tmp_path: Path) -> Iterator[Launched]:
    """`devicestream up` with `env`, once it says every component is ready; stopped after the test
    (`down`, and whatever it left killed)."""
    data, out_log = Path(env["DEVICESTREAM_DATA_DIR"]), tmp_path / "up.log"
    run = Launched(start_up(env, out_log), data, out_log)
    try:
        wait_up(run.proc, out_log, 120, logs=run.logs)
        yield run
    finally:
        stop_up(run.proc, env, data)


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    kport, cport = free_ports(2)
    env = {
        "DEVICESTREAM_DATA_DIR": str(tmp_path / "data"),
        "DEVICESTREAM_KAFKA_PORT": str(kport),
        "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(cport),
        "DEVICESTREAM_COMPONENTS": "kafka",
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }
    return env


def test_up_restart_down(stack_env: dict[str, str], tmp_path: Path) -> None:
    with _launched(stack_env, tmp_path) as run:
        first = run.kafka()
        assert first.state == "ready" and first.pid
        status = _cli("status", env=stack_env)
        assert status.returncode == 0 and "kafka" in status.stdout and "ready" in status.stdout

        os.kill(first.pid, signal.SIGKILL)
        wait_for(
            lambda: (c := run.kafka()).restarts == 1 and c.state == "ready" and c.pid != first.pid,
            120,
            "kafka to be restarted and ready",
            logs=run.logs,
        )
        assert "exited with code -9" in run.out_log.read_text()
        pids = [run.proc.pid, run.kafka().pid]
        children = [p.pid for p in psutil.Process(run.proc.pid).children(recursive=True)]

        down = _cli("down", env=stack_env)
        assert down.returncode == 0, down.stdout + down.stderr
        run.proc.wait(30)
        assert run.proc.returncode == 0, log_tail(run.out_log)
        assert not any(runs(pid) for pid in pids + children)
        assert _port_free(int(stack_env["DEVICESTREAM_KAFKA_PORT"]))
        assert _port_free(int(stack_env["DEVICESTREAM_KAFKA_CONTROLLER_PORT"]))
        assert _cli("status", env=stack_env).returncode == 3


def test_refuses_unwritable_data_dir(stack_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = _cli("up", env={**stack_env, "DEVICESTREAM_DATA_DIR": str(blocker / "data")}, timeout=60)
    assert res.returncode == 1
    assert "not writable" in res.stderr + res.stdout and "DEVICESTREAM_DATA_DIR" in res.stderr + res.stdout


def test_refuses_busy_port(stack_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(stack_env["DEVICESTREAM_KAFKA_PORT"])))
        s.listen()
        res = _cli("up", env=stack_env, timeout=60)
    assert res.returncode == 1
    assert "already in use" in res.stderr + res.stdout and "DEVICESTREAM_KAFKA_PORT" in res.stderr + res.stdout


def test_a_component_alive_but_not_ready_is_restarted_with_its_cause(stack_env: dict[str, str], tmp_path: Path) -> None:
    """The broker frozen (SIGSTOP: alive, answering nothing) past DEVICESTREAM_UNREADY_RESTART_S is
    stopped and restarted; `status` and the launcher's output say why."""
    env = {
        **stack_env,
        "DEVICESTREAM_UNREADY_RESTART_S": "4",
        "DEVICESTREAM_STOP_TIMEOUT_S": "3",
        "DEVICESTREAM_LOG_MAX_BYTES": "65536",
        "DEVICESTREAM_LOG_BACKUPS": "2",
    }
    frozen = 0
    with _launched(env, tmp_path) as run:
        try:
            frozen = run.kafka().pid or 0
            assert frozen
            os.kill(frozen, signal.SIGSTOP)
            c = wait_for(
                lambda: (c := run.kafka()).restarts == 1 and c.state == "ready" and c,
                120,
                "the frozen broker to be restarted and ready",
                logs=run.logs,
            )
            assert c.cause.startswith("not ready for"), c
            assert c.pid != frozen and not psutil.pid_exists(frozen)
            assert "kafka not ready for" in run.out_log.read_text()
            status = _cli("status", env=env)
            assert "last restart: not ready for" in status.stdout, status.stdout

            # The broker's output went through the size-rotated log: at most 1 + 2 files of 64 KiB.
            logs_dir = run.data / "logs"
            rotated = sorted(p.name for p in logs_dir.iterdir() if p.name.startswith("kafka.log"))
            assert rotated == ["kafka.log", "kafka.log.1", "kafka.log.2"], rotated
            assert all((logs_dir / name).stat().st_size <= 65536 for name in rotated)
        finally:
            if frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(frozen, signal.SIGCONT)


def test_down_stops_the_components_of_a_killed_launcher(stack_env: dict[str, str], tmp_path: Path) -> None:
    """kill -9 of the launcher leaves its components running in their own process groups: `status`
    says so, `up` refuses to start a second stack over them, `down` stops them and cleans up."""
    with _launched(stack_env, tmp_path) as run:
        kafka = run.kafka()
        assert kafka.leader and kafka.wrapper
        group = kafka.leader.pid
        members = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == group]
        assert kafka.pid == group and group in members
        members.append(kafka.wrapper.pid)  # the log wrapper goes too

        kill_process(run.proc)
        assert psutil.Process(group).is_running()

        status = _cli("status", env=stack_env)
        assert status.returncode == 3 and "components still run" in status.stdout, status.stdout
        refused = _cli("up", env=stack_env, timeout=60)
        assert refused.returncode == 1 and "still run without their launcher" in refused.stderr, refused.stderr

        down = _cli("down", env=stack_env)
        assert down.returncode == 0 and "stopping kafka" in down.stdout, down.stdout + down.stderr
        assert not any(runs(pid) for pid in members)
        assert _port_free(int(stack_env["DEVICESTREAM_KAFKA_PORT"]))
        assert not run.state_file.exists()
        assert "nothing to stop" in _cli("down", env=stack_env).stdout


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_reused_pid_is_never_signalled(stack_env: dict[str, str], tmp_path: Path) -> None:
    """launcher.json names live pids (as after a crash and pid reuse) whose create time or command
    line differ: `down` and `status` treat them as gone, signal nothing, and clean the stale file."""
    data = Path(stack_env["DEVICESTREAM_DATA_DIR"])
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        me = psutil.Process(bystander.pid)
        stale = ProcessRecord(pid=bystander.pid, create_time=me.create_time() - 100, cmdline=me.cmdline())
        other_cmd = ProcessRecord(pid=bystander.pid, create_time=me.create_time(), cmdline=["java", "kafka.Kafka"])
        state_file = DataLayout(data).launcher_state
        LauncherState(
            pid=bystander.pid,
            launcher=stale,
            components={"kafka": ComponentRecord(state="ready", pid=bystander.pid, leader=other_cmd)},
        ).write(state_file)
        assert _cli("status", env=stack_env).returncode == 3
        down = _cli("down", env=stack_env)
        assert down.returncode == 0 and "nothing to stop" in down.stdout, down.stdout + down.stderr
        assert bystander.poll() is None  # not signalled
        assert not state_file.exists()
    finally:
        bystander.kill()
        bystander.wait()
