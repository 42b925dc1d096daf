"""launcher.json (contract/launcher.py): the document the supervisor writes is the one every reader
parses, in the same JSON format as always."""

from __future__ import annotations

import json
import os
from pathlib import Path

from contract.launcher import ComponentRecord, LauncherState, ProcessRecord
from devicestream.processes import ProcessIdentity
from devicestream.settings import LauncherSettings
from devicestream.specs import ComponentSpec
from devicestream.supervise import Running, Supervisor

COMPONENT_KEYS = {
    "state",
    "pid",
    "leader",
    "wrapper",
    "cause",
    "url",
    "log",
    "restarts",
    "last_exit",
    "started_at",
    "ready_at",
}


async def _never() -> bool:
    return False


def test_the_supervisor_writes_what_readers_parse_in_the_same_format(tmp_path: Path) -> None:
    sup = Supervisor(LauncherSettings(data_dir=tmp_path), out=lambda _: None, env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    running = Running(ComponentSpec("merger", ["true"], tmp_path / "merger.log", _never, url="http://h:2/docs"))
    running.state, running.restarts, running.cause = "ready", 2, "exited with code -9"
    sup.components.append(running)
    sup.write_state()

    raw = json.loads(sup.state_file.read_text())
    assert set(raw) == {"pid", "launcher", "bootstrap", "updated_at", "stopping", "components"}
    assert set(raw["components"]["merger"]) == COMPONENT_KEYS
    assert raw["pid"] == os.getpid() and raw["launcher"]["pid"] == os.getpid()

    state = LauncherState.read(sup.state_file)
    assert state is not None and state.bootstrap == "h:1" and not state.stopping
    merger = state.components["merger"]
    assert (merger.state, merger.restarts, merger.cause, merger.pid) == ("ready", 2, "exited with code -9", None)
    assert merger.log == str(tmp_path / "merger.log") and merger.url == "http://h:2/docs"
    assert ProcessIdentity.from_record(state.launcher) == sup.identity


def test_no_file_or_a_torn_one_reads_as_no_stack(tmp_path: Path) -> None:
    path = tmp_path / "launcher.json"
    assert LauncherState.read(path) is None
    path.write_text('{"pid": 12')
    assert LauncherState.read(path) is None
    path.write_text('{"components": {}}')  # no launcher pid: not a launcher's document
    assert LauncherState.read(path) is None


def test_a_record_round_trips() -> None:
    leader = ProcessRecord(pid=10, create_time=1.5, cmdline=["java", "kafka.Kafka"])
    state = LauncherState(pid=9, components={"kafka": ComponentRecord(state="unready", pid=10, leader=leader)})
    assert LauncherState.model_validate_json(state.model_dump_json()) == state
