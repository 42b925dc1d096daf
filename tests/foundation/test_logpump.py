"""devicestream.logpump: a component's output to a size-rotated log, its exit status passed on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devicestream.processes import kill_process, runs, start_in_own_group
from tests.helpers import REPO_ROOT, wait_for

pytestmark = pytest.mark.integration


def _pump(log: Path, max_bytes: int, backups: int, code: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "devicestream.logpump", str(log), str(max_bytes), str(backups), "--"]
    return subprocess.run([*argv, sys.executable, "-c", code], cwd=REPO_ROOT, timeout=60, capture_output=True)


def test_output_is_rotated_by_size_with_a_bounded_count(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "c.log"
    res = _pump(
        log,
        2000,
        2,
        "import sys\nfor i in range(1000): print(f'line {i:04d}', file=sys.stderr if i % 2 else sys.stdout)",
    )
    assert res.returncode == 0, res.stderr
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["c.log", "c.log.1", "c.log.2"]
    for p in log.parent.iterdir():
        text = p.read_text()
        assert len(text.encode()) <= 2000
        assert all(line.startswith("line ") and len(line) == 9 for line in text.splitlines())  # lines kept whole
    assert log.read_text().splitlines()[-1] == "line 0999"


def test_exit_code_and_signal_are_passed_on(tmp_path: Path) -> None:
    assert _pump(tmp_path / "a.log", 10_000, 1, "raise SystemExit(3)").returncode == 3
    killed = _pump(tmp_path / "b.log", 10_000, 1, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == -9
    termed = _pump(tmp_path / "c.log", 10_000, 1, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert termed.returncode == -15


def test_the_component_dies_with_its_wrapper(tmp_path: Path) -> None:
    """SIGKILL of the wrapper (as when it is stopped before anyone knew its component's pid) takes
    the component with it, though the component leads a session of its own."""
    log = tmp_path / "c.log"
    argv = [sys.executable, "-m", "devicestream.logpump", str(log), "10000", "1", "--"]
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(300)"
    wrapper = start_in_own_group([*argv, sys.executable, "-c", code], tmp_path / "wrapper.log", cwd=REPO_ROOT)
    component: int | None = None
    try:
        component = int(
            wait_for(lambda: log.exists() and log.read_text().strip(), 30, "the component's pid", logs=[log])
        )
        assert os.getpgid(component) == component != wrapper.pid  # its own group, not the wrapper's
        kill_process(wrapper)
        wait_for(lambda: not runs(component), 30, f"component {component} to die with its wrapper", logs=[log])
    finally:
        kill_process(wrapper)
        if component is not None and runs(component):
            os.killpg(component, signal.SIGKILL)
