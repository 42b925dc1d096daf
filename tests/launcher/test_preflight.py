"""`devicestream up`'s checks (devicestream/preflight.py): each refusal says what to fix."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from contract.launcher import ComponentRecord, LauncherState
from devicestream.preflight import LaunchError, check_data_dir, check_no_stack, check_port_free
from devicestream.processes import ProcessIdentity


def test_an_unwritable_data_folder_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LaunchError, match=r"not writable.*DEVICESTREAM_DATA_DIR"):
        check_data_dir(blocker / "data")
    check_data_dir(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []  # the probe is gone


def test_a_busy_port_names_the_setting() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(LaunchError, match=f"127.0.0.1:{port} is already in use.*GATEWAY_PORT"):
            check_port_free("127.0.0.1", port, "GATEWAY_PORT")


def test_a_live_launcher_is_refused_and_a_stale_record_removed(tmp_path: Path) -> None:
    state_file = tmp_path / "run" / "launcher.json"
    live = ProcessIdentity.of(os.getppid())  # a process that runs, and is not this one
    assert live is not None
    LauncherState(pid=live.pid, launcher=live).write(state_file)
    with pytest.raises(LaunchError, match=f"already running.*launcher pid {live.pid}.*devicestream down"):
        check_no_stack(state_file)

    gone = live.model_copy(update={"create_time": live.create_time - 100})  # its pid, since reused
    stale = ComponentRecord(state="ready", pid=live.pid, leader=gone)
    LauncherState(pid=live.pid, launcher=gone, components={"kafka": stale}).write(state_file)
    check_no_stack(state_file)
    assert not state_file.exists()
