"""The supervisor's stop with real processes (devicestream/supervise.py)."""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from devicestream.settings import LauncherSettings
from devicestream.specs import ComponentSpec
from devicestream.supervise import Running, Supervisor
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


async def _never() -> bool:
    return False


def _marked(marker: str) -> list[psutil.Process]:
    """Live processes whose command line ends with `marker`: the component, not its wrapper (whose
    command line holds the component's, then more)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = p.info["cmdline"] or []
        if cmdline[-1:] == [marker] and "devicestream.logpump" not in cmdline and p.info["status"] != "zombie":
            found.append(p)
    return found


def test_a_component_the_launcher_does_not_know_yet_is_stopped_with_its_wrapper(tmp_path: Path) -> None:
    """A component (re)spawned just before a stop, whose pid the launcher has not read yet: stopping
    it stops its wrapper, and the component (in a session of its own) goes with it, not left to run
    with parent 1 (an e2e merger once survived the suite that way)."""
    marker = f"devicestream-test-{uuid.uuid4().hex}"
    log = tmp_path / "c.log"
    spec = ComponentSpec("c", [sys.executable, "-c", "import time; time.sleep(300)", marker], log, _never)
    sup = Supervisor(LauncherSettings(data_dir=tmp_path / "data"), out=lambda _: None)
    r = Running(spec)
    sup.components.append(r)
    try:
        sup._spawn(r)
        wait_for(lambda: _marked(marker), 30, "the component to run", logs=[log])
        r.refresh_leader = lambda: None  # as if it had been started after the launcher last looked
        assert r.component_pid() is None
        sup._terminate(r, timeout_s=60)
        assert r.proc is not None and r.proc.poll() is not None  # the wrapper is gone
        wait_for(lambda: not _marked(marker), 30, "the component to die with its wrapper", logs=[log])
    finally:
        for p in _marked(marker):
            with contextlib.suppress(psutil.Error):
                p.kill()
        if r.proc is not None and r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)
