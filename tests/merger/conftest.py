"""Fixtures that run the merger for real (`python -m services.merger`) on a temp data folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devicestream.processes import free_ports
from tests.helpers import ServiceProcess
from tests.tiers import starts_processes


class MergerRunner:
    """Starts merger processes on one data folder; every process it starts is stopped at the end."""

    def __init__(self, data_dir: Path, log_file: Path) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.started: list[ServiceProcess] = []
        self.url = ""

    def process(self, ready: bool = True, **env: str) -> ServiceProcess:
        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}"
        proc = ServiceProcess(
            "services.merger",
            {
                "DEVICESTREAM_DATA_DIR": str(self.data_dir),
                "MERGER_PORT": str(port),
                "MERGER_RESCAN_INTERVAL_S": "0.5",
                "MERGER_GAP_TIMEOUT_S": "0.5",
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            self.log_file,
            f"{self.url}/readyz" if ready else None,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
@starts_processes
def merger_runner(tmp_path: Path) -> Iterator[MergerRunner]:
    runner = MergerRunner(tmp_path / "data", tmp_path / "merger.log")
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture
def rows_dir(merger_runner: MergerRunner) -> Path:
    path = merger_runner.data_dir / "spark" / "rows"
    path.mkdir(parents=True, exist_ok=True)
    return path


StatusGetter = Callable[[], dict]
