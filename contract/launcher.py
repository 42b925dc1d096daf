"""launcher.json: the running stack as its launcher sees it, at <data_dir>/run/launcher.json.

Written by the launcher (devicestream/supervise.py) on every change of a component's state; read by
`devicestream status` and `down` from another shell (devicestream/stack_client.py), by the tests
and by the benchmarks (a component's pid, its state and restarts). Every process is recorded with
its create time and command line beside its pid, so that a reader can tell whether the pid still
names that process (pids are reused after a crash)."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from contract.files import atomic_write_bytes

#: The exit code of a component that refuses to run until an operator acts (EX_CONFIG of sysexits.h):
#: the Spark job with a checkpoint of a recreated topic. The launcher does not restart it (state
#: failed, the component's one-line reason as its cause) until the spec says the cause is gone.
EXIT_REFUSED: Final = 78

#: pending: not started yet; starting: started, not ready yet; ready / unready: running, its readiness
#: probe passing / failing; restarting: it died, the launcher starts it again after a backoff;
#: stopping / stopped: the launcher stops it / stopped it
ComponentState = Literal["pending", "starting", "ready", "unready", "restarting", "stopping", "stopped", "failed"]


class ProcessRecord(BaseModel):
    """One process: its pid, create time (psutil, seconds since the epoch) and command line."""

    model_config = ConfigDict(frozen=True)

    pid: int
    create_time: float
    cmdline: list[str]


class ComponentRecord(BaseModel):
    """One component of the stack (a broker node, the Spark job, a service)."""

    state: ComponentState
    #: the component's pid, which is its process group's id (None until its wrapper has started it)
    pid: int | None = None
    #: the component itself, its process group's leader: what `down` stops when the launcher is gone
    leader: ProcessRecord | None = None
    #: its log wrapper (devicestream.logpump), the launcher's child
    wrapper: ProcessRecord | None = None
    #: why it was last restarted ("exited with code -9", "not ready for 60s"); "" before a restart
    cause: str = ""
    url: str = ""
    #: the path of its log file
    log: str = ""
    restarts: int = 0
    last_exit: int | None = None
    #: wall-clock times (seconds since the epoch) of its last start and of it being ready since
    started_at: float = 0.0
    ready_at: float | None = None


class LauncherState(BaseModel):
    """The whole document."""

    #: the launcher's pid (kept beside `launcher` for readers that only want the number)
    pid: int
    launcher: ProcessRecord | None = None
    #: KAFKA_BOOTSTRAP_SERVERS the components were given
    bootstrap: str = ""
    updated_at: float = 0.0
    #: the launcher is stopping the stack
    stopping: bool = False
    #: by component name, in start order
    components: dict[str, ComponentRecord] = {}

    @classmethod
    def read(cls, path: Path) -> LauncherState | None:
        """The document at `path`; None when there is none or it is not one (a torn or foreign file
        is treated as no stack)."""
        try:
            return cls.model_validate(orjson.loads(path.read_bytes()))
        except (FileNotFoundError, orjson.JSONDecodeError, ValidationError):
            return None

    def write(self, path: Path) -> None:
        """Replace the document at `path` atomically (not fsynced: it describes live processes only)."""
        atomic_write_bytes(path, orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2), durable=False)
