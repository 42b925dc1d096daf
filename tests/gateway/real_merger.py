"""The real merger on a temp data folder with the real gateway in front of it (no Kafka, no
generator): for the routes that read the merged data. Batch files are written by the test
(tests/merger/batches.py) into `rows_dir`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from contract.events import TOPIC_DEFAULT
from devicestream.processes import free_ports
from tests.gateway.conftest import Stack, start_stack

#: A gateway stack of two: the real merger and the gateway.
Served = Stack


def merger_and_gateway(tmp: Path, **merger_env: str) -> Served:
    """The stack, not started: no Kafka and no generator (nothing listens at their addresses)."""
    (nothing_port,) = free_ports(1)
    return Stack(tmp, f"127.0.0.1:{nothing_port}", TOPIC_DEFAULT, component_env={"merger": merger_env})


def start_merger_and_gateway(tmp: Path, **merger_env: str) -> Served:
    """Both started (stop them with `stop_all()`)."""
    return merger_and_gateway(tmp, **merger_env).start_all("merger", "gateway")


def served_in(tmp: Path, **merger_env: str) -> Iterator[Served]:
    """For a fixture: start both, yield, stop both."""
    yield from start_stack(merger_and_gateway(tmp, **merger_env), "merger", "gateway")
