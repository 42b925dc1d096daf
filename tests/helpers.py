"""Test helpers: polling with a deadline (never a blind sleep) and real service processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from devicestream.kafka_broker import log_tail

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
    end = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:
            last_exc = e
        if time.monotonic() > end:
            tails = "\n".join(f"--- tail of {p}:\n{log_tail(p)}" for p in logs)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}\n{tails}")
        time.sleep(interval)


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


class ServiceProcess:
    """A component run as a real process (`python -m <module>`), its output in a log file."""

    def __init__(self, module: str, env: Mapping[str, str], log_file: Path, ready_url: str | None) -> None:
        self.module = module
        self.env = {**os.environ, **env}
        self.log_file = log_file
        self.ready_url = ready_url
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        return self.proc.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
