"""`devicestream up | status | down` on a real broker: readiness, restart of a killed component, a
clean stop that leaves no process and frees the ports, and clear refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from devicestream.kafka_broker import free_ports, log_tail
from tests.helpers import REPO_ROOT, devicestream_cli, wait_for

_cli = devicestream_cli


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


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
    data = Path(stack_env["DEVICESTREAM_DATA_DIR"])
    out_log = tmp_path / "up.log"
    with open(out_log, "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "devicestream", "up"],
            env={**os.environ, **stack_env},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state_file = data / "run" / "launcher.json"
    logs = [out_log, data / "logs" / "kafka.log"]
    try:

        def component() -> dict | None:
            doc = json.loads(state_file.read_text())
            return doc["components"].get("kafka")

        wait_for(lambda: "all components ready" in out_log.read_text(), 120, "the stack to be ready", logs=logs)
        first = component()
        assert first and first["state"] == "ready"
        status = _cli("status", env=stack_env)
        assert status.returncode == 0 and "kafka" in status.stdout and "ready" in status.stdout

        os.kill(first["pid"], signal.SIGKILL)
        wait_for(
            lambda: (c := component()) and c["restarts"] == 1 and c["state"] == "ready" and c["pid"] != first["pid"],
            120,
            "kafka to be restarted and ready",
            logs=logs,
        )
        assert "exited with code -9" in out_log.read_text()
        pids = [launcher.pid, component()["pid"]]
        children = [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]

        down = _cli("down", env=stack_env)
        assert down.returncode == 0, down.stdout + down.stderr
        launcher.wait(30)
        assert launcher.returncode == 0, log_tail(out_log)
        for pid in pids + children:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert _port_free(int(stack_env["DEVICESTREAM_KAFKA_PORT"]))
        assert _port_free(int(stack_env["DEVICESTREAM_KAFKA_CONTROLLER_PORT"]))
        assert _cli("status", env=stack_env).returncode == 3
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            for p in psutil.process_iter(["cmdline"]):
                if str(data) in " ".join(p.info["cmdline"] or []):
                    p.kill()


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
