"""Shared resources of one bench run: a work folder and a broker started on first use."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bench.common import Config
from bench.procs import Broker, broker


class RunContext:
    def __init__(self, cfg: Config, work: Path, stack: contextlib.ExitStack) -> None:
        self.cfg = cfg
        self.work = work
        self._stack = stack
        self._broker: Broker | None = None
        #: Figures later stages compare against (e.g. the generator's throughput for end to end).
        self.shared: dict[str, Any] = {}

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = self._stack.enter_context(broker(self.work / "broker"))
        return self._broker
