"""Test helpers: polling with a deadline (never a blind sleep) and real service processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from devicestream.processes import DeadlineExpired, kill_process, log_tail, start_in_own_group, stop_process, wait_until

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    logs: Sequence[Path] = (),
    interval: float = 0.1,
) -> T:
    """Poll `predicate` until it returns something truthy; on timeout fail with `what` and the tails
    of `logs`. Exceptions from the predicate count as "not yet" (the last one is shown)."""
    try:
        return wait_until(predicate, timeout, what, logs=logs, interval_s=interval)
    except DeadlineExpired as e:
        raise AssertionError(str(e)) from None


def devicestream_cli(*args: str, env: Mapping[str, str], timeout: float = 150) -> subprocess.CompletedProcess:
    """`python -m devicestream *args` with `env` over this process's environment, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "devicestream", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_up(
    env: Mapping[str, str], out_log: Path, up_args: Sequence[str] = (), *, base: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """`devicestream up *up_args` with `env` over `base` (default: this process's environment), its
    output in a fresh `out_log` (readiness is read from it)."""
    out_log.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "devicestream", "up", *up_args]
    whole = {**(os.environ if base is None else base), **env}
    return start_in_own_group(argv, out_log, env=whole, cwd=REPO_ROOT)


def wait_up(launcher: subprocess.Popen, out_log: Path, timeout: float, *, logs: Sequence[Path] = ()) -> None:
    """Until `devicestream up` says every component is ready; fail at once if it exits first."""

    def ready() -> bool:
        if "all components ready" in out_log.read_text(errors="replace"):
            return True
        if launcher.poll() is not None:
            pytest.fail(f"the launcher exited with {launcher.returncode}:\n{log_tail(out_log)}")
        return False

    wait_for(ready, timeout, "the stack to be ready", logs=[out_log, *logs], interval=0.5)


def stop_up(launcher: subprocess.Popen, env: Mapping[str, str], data: Path, timeout: float = 180) -> None:
    """`devicestream down`, the launcher reaped (killed if it lingers), then any process still naming
    the data folder killed (not even a stray JVM is left)."""
    devicestream_cli("down", env=env, timeout=timeout)
    with contextlib.suppress(subprocess.TimeoutExpired):
        launcher.wait(30)
    kill_process(launcher)
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(data) in " ".join(p.info["cmdline"] or []):
                p.kill()


class ServiceProcess:
    """A component run as a real process (`python -m <module>`), its output in a log file."""

    def __init__(self, module: str, env: Mapping[str, str], log_file: Path, ready_url: str | None) -> None:
        self.module = module
        self.env = {**os.environ, **env}
        self.log_file = log_file
        self.ready_url = ready_url
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.proc = start_in_own_group([sys.executable, "-m", self.module], self.log_file, env=self.env, cwd=REPO_ROOT)
        if self.ready_url:

            def ready() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.module} exited with {self.proc.returncode}:\n{log_tail(self.log_file)}"
                    )
                return httpx.get(self.ready_url, timeout=2).status_code == 200

            try:
                wait_for(ready, timeout, f"{self.module} ready at {self.ready_url}", logs=[self.log_file])
            except BaseException:
                self.stop()
                raise
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc:
            kill_process(self.proc)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        return stop_process(self.proc, timeout) if self.proc else None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def produce(bootstrap: str, topic: str, values: Sequence[bytes], key: bytes = b"k", **options: object) -> None:
    """Send `values` to `topic` one by one, each acknowledged by all replicas (a real aiokafka producer)."""
    from aiokafka import AIOKafkaProducer

    async def send_all() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
        await producer.start()
        try:
            for v in values:
                await producer.send_and_wait(topic, v, key=key)
        finally:
            await producer.stop()

    asyncio.run(send_all())


def recreate_topic(bootstrap: str, topic: str, partitions: int = 3, deadline_s: float = 30) -> None:
    """Delete `topic`, wait until the controller has deleted it, and create it again empty."""
    from kafka_io.admin import admin_client, create_topic

    async def go() -> None:
        async with admin_client(bootstrap) as admin:
            await admin.delete_topics([topic])
            for _ in range(int(deadline_s / 0.2)):  # deletion is asynchronous in the controller
                if topic not in await admin.list_topics():
                    break
                await asyncio.sleep(0.2)
            await create_topic(admin, topic, partitions)

    asyncio.run(go())
