"""`devicestream status` and `down`, from another shell: what the stack of a data folder is, read from
its launcher.json (contract/launcher.py), and stopping it. Every recorded process is checked to still
be itself (pid, create time, command line) before it is counted or signalled: after a crash its pid
may belong to an unrelated process by now."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Literal

from contract.launcher import LauncherState
from devicestream.processes import ProcessIdentity, group_members, stop_group, stop_wrapper
from devicestream.settings import LauncherSettings

# ---- reading launcher.json ----------------------------------------------------------------------


def running_launcher(state: LauncherState | None) -> ProcessIdentity | None:
    """The launcher recorded in `state` if it still runs (and is not this process)."""
    me = ProcessIdentity.from_record(state.launcher) if state else None
    return me if me is not None and me.pid != os.getpid() and me.alive() else None


def recorded(state: LauncherState | None, role: Literal["leader", "wrapper"]) -> dict[str, ProcessIdentity]:
    """Each component's recorded `role` process ("leader": the component, the leader of its process
    group; "wrapper": its log wrapper), whether or not it still runs."""
    components = state.components if state else {}
    found = {name: ProcessIdentity.from_record(getattr(c, role)) for name, c in components.items()}
    return {name: ident for name, ident in found.items() if ident is not None}


def orphans(state: LauncherState | None) -> dict[str, ProcessIdentity]:
    """Recorded components that still run (or whose group still has members) without a launcher."""
    leaders = recorded(state, "leader")
    return {name: leader for name, leader in leaders.items() if leader.alive() or group_members(leader)}


def describe_orphans(found: dict[str, ProcessIdentity]) -> str:
    return ", ".join(f"{name} (group {leader.pid})" for name, leader in found.items())


# ---- status -------------------------------------------------------------------------------------


def status_lines(settings: LauncherSettings) -> tuple[bool, list[str]]:
    """(whether a launcher runs for this data folder, the lines `devicestream status` prints)."""
    state = LauncherState.read(settings.layout.launcher_state)
    launcher = running_launcher(state)
    if state is None or launcher is None:
        if found := orphans(state):
            return False, [
                f"devicestream: the launcher is gone but components still run: {describe_orphans(found)}; "
                "`devicestream down` stops them"
            ]
        return False, [f"devicestream: not running (no live launcher for {settings.data_dir.resolve()})"]
    lines = [f"devicestream: launcher pid {launcher.pid}"]
    for name, c in state.components.items():
        cause = (f"  {c.cause}" if c.state == "failed" else f"  last restart: {c.cause}") if c.cause else ""
        lines.append(
            f"  {name:<10} {c.state:<10} pid {c.pid!s:<8} restarts {c.restarts:<3} {c.url:<34} log {c.log}{cause}"
        )
    return True, lines


def running_bootstrap(settings: LauncherSettings) -> str:
    """KAFKA_BOOTSTRAP_SERVERS of the stack running from this data folder, or of the embedded
    broker's default port when none runs."""
    state = LauncherState.read(settings.layout.launcher_state)
    if state is not None and state.bootstrap:
        return state.bootstrap
    return f"{settings.host}:{settings.kafka_port}"


# ---- down ---------------------------------------------------------------------------------------


def down(settings: LauncherSettings, out: Callable[[str], None], timeout_s: float = 120.0) -> int:
    """Stop the stack of this data folder: SIGTERM its launcher (which stops its components in
    order); with the launcher gone (killed), stop the recorded component groups directly, last
    started first. Every recorded process is checked to still be itself before it is signalled."""
    state_file = settings.layout.launcher_state
    launcher = running_launcher(LauncherState.read(state_file))
    if launcher:
        os.kill(launcher.pid, signal.SIGTERM)
        end = time.monotonic() + timeout_s
        while launcher.alive():
            if time.monotonic() > end:
                out(f"devicestream: launcher {launcher.pid} still running after {timeout_s:.0f}s")
                return 1
            time.sleep(0.2)
    state = LauncherState.read(state_file)  # what the launcher left, if it could not clean up
    left = orphans(state)
    for name, leader in reversed(left.items()):
        out(f"devicestream: the launcher is gone; stopping {name} (process group {leader.pid})")
        stop_group(leader, settings.stop_timeout_s)
    for wrapper in recorded(state, "wrapper").values():
        stop_wrapper(wrapper, timeout_s=5.0)  # it exits by itself once its component's output closes
    state_file.unlink(missing_ok=True)
    if not launcher and not left:
        out(f"devicestream: nothing to stop for {settings.data_dir.resolve()}")
        return 0
    out("devicestream: stopped")
    return 0
