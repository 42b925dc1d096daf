"""Process handling, the one home for it (the launcher, the embedded broker, tests and bench use it):

- starting a command in a process group of its own with its output in a log (`start_in_own_group`),
  and stopping that group, gracefully first (`stop_process`, `kill_process`, `signal_group`);
  whether a pid runs (`runs`);
- polling with a deadline that shows the relevant log tails when it expires (`wait_until`,
  `DeadlineExpired`, `log_tail`, `log_tails`);
- free ports for side-by-side stacks and tests, below the ephemeral range (`free_ports`,
  `free_port_range`);
- who a recorded pid is: a pid alone is reused by the system after a crash, so the launcher records
  each process's create time and command line (psutil) and checks both before it signals anything
  (`ProcessIdentity`, `group_members`, `stop_group`, `kill_group`, `stop_wrapper`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import psutil

from contract.launcher import ProcessRecord

T = TypeVar("T")

#: how much of a log's end `log_tail` reads
TAIL_BYTES = 64 * 1024


# ---- ports, logs, deadlines ---------------------------------------------------------------------


#: where the kernel hands out source ports for outgoing connections
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(n: int, tries: int = 200) -> int:
    """The first of `n` consecutive free TCP ports on 127.0.0.1, below the kernel's ephemeral range.

    A port the kernel picked for `bind(0)` comes from the ephemeral range, the range it also hands
    out as source ports for outgoing connections: between choosing such a port and the service
    binding it (a container build, a JVM start), any client connection on the machine can take it
    (CI: a compose gateway failed with "address already in use"), and a node that keeps dialling a
    peer's port before the peer listens can be handed that very port and connect to itself (Kafka:
    CorrelationIdMismatchException). Below the range neither happens; a random start keeps
    side-by-side pickers apart, and each port is checked free by binding it."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(tries):
        first = rng.randrange(min(20000, low // 2), low - n)
        socks: list[socket.socket] = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports below {low} found in {tries} tries")


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (for tests and side-by-side stacks), below the
    kernel's ephemeral range so no outgoing connection takes one before its service binds it (see
    `free_port_range`)."""
    first = free_port_range(n)
    return list(range(first, first + n))


_ACCESS = " uvicorn.access: "


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of the log at `path` (from its last 64 KiB), or a note that there is none.
    Access log lines are left out: a test or a launcher polling a service fills a tail with them, and
    hides the line that says what went wrong."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join([line for line in text.splitlines() if _ACCESS not in line][-lines:])


def log_tails(logs: Sequence[Path], lines: int = 40) -> str:
    """The tails of several logs, each under a header naming it."""
    return "\n".join(f"--- tail of {p}:\n{log_tail(p, lines)}" for p in logs)


class DeadlineExpired(TimeoutError):
    """What was waited for did not happen in time; the message names it, the last error and log tails."""


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    logs: Sequence[Path] = (),
    interval_s: float = 0.1,
) -> T:
    """Poll `predicate` until it returns something truthy and return that; after `timeout_s` raise
    DeadlineExpired naming `what`, the last error and the tails of `logs`. Exceptions from the
    predicate count as "not yet" (BaseExceptions such as a test's failure pass through)."""
    end = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:
            last_exc = e
        if time.monotonic() > end:
            error = f"; last error: {last_exc!r}" if last_exc else ""
            tails = f"\n{log_tails(logs)}" if logs else ""
            raise DeadlineExpired(f"timed out after {timeout_s:.0f}s waiting for {what}{error}{tails}")
        time.sleep(interval_s)


# ---- a child in a process group of its own ------------------------------------------------------


def start_in_own_group(
    argv: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start `argv` leading a session (and process group) of its own, so that `stop_process` reaches
    whatever it forks; stdout and stderr appended to `log_file`, stdin closed. `env`: the whole
    environment (None: ours)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Send `sig` to the process group `proc` leads (started by `start_in_own_group`), if it still runs."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen, timeout_s: float = 20.0, sig: signal.Signals = signal.SIGTERM) -> int:
    """`sig` (SIGTERM) to the process group `proc` leads, wait, SIGKILL the group after `timeout_s`.
    Returns the exit code."""
    if proc.poll() is None:
        signal_group(proc, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_process(proc)
    return proc.returncode


def kill_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGKILL the process group `proc` leads, as a crash would, and reap it. Returns the exit code."""
    signal_group(proc, signal.SIGKILL)
    return proc.wait(timeout_s)


def runs(pid: int) -> bool:
    """Whether `pid` names a live process (a zombie waiting to be reaped has stopped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---- recorded processes: identity and groups ---------------------------------------------------

#: create times are floats from /proc; two reads of one process agree far better than this
CREATE_TIME_TOLERANCE_S = 0.05


class ProcessIdentity(ProcessRecord):
    """A process as recorded in launcher.json (pid, create time, command line), and whether the pid
    still names it."""

    @classmethod
    def from_record(cls, record: ProcessRecord | None) -> ProcessIdentity | None:
        return None if record is None else cls(**record.model_dump())

    @classmethod
    def of(cls, pid: int, cmdline: list[str] | None = None) -> ProcessIdentity | None:
        """The identity of `pid` now (None if it is gone). `cmdline`: the argv it was started with,
        for a process just forked that may not have exec'd yet (its create time is already final)."""
        try:
            p = psutil.Process(pid)
            return cls(pid=pid, create_time=p.create_time(), cmdline=cmdline if cmdline is not None else p.cmdline())
        except psutil.Error:
            return None

    def alive(self) -> bool:
        """True iff the pid runs and is still this process (same create time and command line); a
        zombie waiting to be reaped has stopped."""
        try:
            p = psutil.Process(self.pid)
            with p.oneshot():
                return (
                    abs(p.create_time() - self.create_time) <= CREATE_TIME_TOLERANCE_S
                    and p.status() != psutil.STATUS_ZOMBIE
                    and p.cmdline() == self.cmdline
                )
        except psutil.Error:
            return False


def _pid_reused(leader: ProcessIdentity) -> bool:
    """The leader's pid now names another live process. Then no member of the leader's group can be
    left: the system does not reuse a pid while it is still a process group's id."""
    try:
        p = psutil.Process(leader.pid)
        return p.status() != psutil.STATUS_ZOMBIE and not leader.alive()
    except psutil.Error:
        return False


def group_members(leader: ProcessIdentity) -> list[psutil.Process]:
    """Live processes of the process group `leader` led (its id is the leader's pid), created at or
    after the leader; none when the leader's pid was reused by another process."""
    if _pid_reused(leader):
        return []
    members = []
    for p in psutil.process_iter(["create_time", "status"]):
        try:
            if (
                os.getpgid(p.pid) == leader.pid
                and p.info["create_time"] >= leader.create_time - CREATE_TIME_TOLERANCE_S
                and p.info["status"] != psutil.STATUS_ZOMBIE
            ):
                members.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def stop_group(leader: ProcessIdentity, timeout_s: float) -> bool:
    """SIGTERM the process group led by `leader`, SIGKILL what is left after `timeout_s`. Only when
    the leader is still that process, or, the leader gone, only members started after it. Returns
    whether anything was signalled."""
    if leader.alive():
        targets = None  # the whole group, by its id
    else:
        targets = group_members(leader)
        if not targets:
            return False
    _signal(leader.pid, targets, signal.SIGTERM)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not leader.alive() and not group_members(leader):
            return True
        time.sleep(0.2)
    _signal(leader.pid, group_members(leader), signal.SIGKILL)
    return True


def _signal(pgid: int, targets: list[psutil.Process] | None, sig: signal.Signals) -> None:
    if targets is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        return
    for p in targets:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def stop_wrapper(wrapper: ProcessIdentity, timeout_s: float) -> None:
    """A component's log wrapper ignores SIGTERM and exits once its component's output is closed:
    give it `timeout_s` to drain, then SIGKILL it, if it is still that process."""
    end = time.monotonic() + timeout_s
    while wrapper.alive() and time.monotonic() < end:
        time.sleep(0.1)
    if wrapper.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(wrapper.pid, signal.SIGKILL)


def kill_group(leader: ProcessIdentity) -> None:
    """SIGKILL whatever is left of the process group `leader` led (never a reused group id)."""
    _signal(leader.pid, None if leader.alive() else group_members(leader), signal.SIGKILL)
