"""`devicestream status` from another shell (devicestream/stack_client.py), read from launcher.json."""

from __future__ import annotations

import os
from pathlib import Path

from contract.launcher import ComponentRecord, LauncherState
from devicestream.processes import ProcessIdentity
from devicestream.settings import LauncherSettings
from devicestream.stack_client import running_bootstrap, status_lines


def test_status_lists_each_component_of_a_live_launcher(tmp_path: Path) -> None:
    settings = LauncherSettings(data_dir=tmp_path)
    live = ProcessIdentity.of(os.getppid())
    merger = ComponentRecord(state="ready", pid=42, restarts=1, cause="exited with code -9", url="u", log="l")
    LauncherState(pid=live.pid, launcher=live, bootstrap="h:1", components={"merger": merger}).write(
        settings.layout.launcher_state
    )
    running, lines = status_lines(settings)
    assert running and lines[0] == f"devicestream: launcher pid {live.pid}"
    assert lines[1].split()[:6] == ["merger", "ready", "pid", "42", "restarts", "1"]
    assert lines[1].endswith("last restart: exited with code -9")
    assert running_bootstrap(settings) == "h:1"


def test_no_stack_is_not_running(tmp_path: Path) -> None:
    settings = LauncherSettings(data_dir=tmp_path, kafka_port=19092)
    running, lines = status_lines(settings)
    assert not running and "not running" in lines[0]
    assert running_bootstrap(settings) == "127.0.0.1:19092"
