"""Who a recorded pid is: a pid alone is reused by the system after a crash, so the launcher records
each process's create time and command line (psutil) and checks both before it signals anything."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
from pydantic import BaseModel, ConfigDict

#: create times are floats from /proc; two reads of one process agree far better than this
CREATE_TIME_TOLERANCE_S = 0.05


class ProcessIdentity(BaseModel):
    """A process as recorded in launcher.json: pid, create time, command line."""

    model_config = ConfigDict(frozen=True)

    pid: int
    create_time: float
    cmdline: list[str]

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
