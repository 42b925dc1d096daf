"""An upstream that is down, hangs or answers garbage: a clear 503/504/502 JSON error naming it,
within the timeout; never a hang, never a 500. Real sockets only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract.pipeline_status import PipelineStatus
from devicestream.processes import free_ports
from tests.gateway.conftest import Stack, make_stack

pytestmark = pytest.mark.integration


class RawServer:
    """A TCP server on 127.0.0.1 that either never answers (hang) or answers garbage and closes."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "garbage":
                conn.recv(65536)
                conn.sendall(b"this is not http\r\n\r\n")
                conn.close()
            else:
                self.conns.append(conn)  # hold it open, say nothing

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


@pytest.fixture
def broken(tmp_path: Path, kafka: object) -> Iterator[tuple[Stack, RawServer, RawServer]]:
    hang, garbage = RawServer("hang"), RawServer("garbage")
    (dead_port,) = free_ports(1)
    s = make_stack(tmp_path, kafka)
    # generator: nothing listens (503); merger: hangs (504); garbage server used via /readyz below
    s.gen_port, s.merger_port = dead_port, hang.port
    s.gateway_env = {
        "GATEWAY_COMMAND_TIMEOUT_S": "1.5",
        "GATEWAY_STATUS_TIMEOUT_S": "1.5",
        "GATEWAY_STREAM_READ_TIMEOUT_S": "2",
    }
    try:
        s.start("gateway")
        yield s, hang, garbage
    finally:
        s.stop_all()
        hang.close()
        garbage.close()


def timed(fn) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def test_down_hang_garbage(broken: tuple[Stack, RawServer, RawServer], tmp_path: Path, kafka: object) -> None:
    s, _hang, garbage = broken
    r, dt = timed(lambda: httpx.post(f"{s.url}/generator/start", json={"rate": 1}, timeout=10))
    assert r.status_code == 503 and dt < 3
    body = r.json()
    assert body["component"] == "generator" and body["error"] == "unreachable" and "generator" in body["detail"]
    assert "Traceback" not in r.text
    for method, path in (("GET", "/generator/status"), ("POST", "/generator/stop")):
        r = httpx.request(method, f"{s.url}{path}", timeout=10)
        assert r.status_code == 503 and r.json()["component"] == "generator"

    r, dt = timed(lambda: httpx.get(f"{s.url}/merged.csv", timeout=60))
    assert r.status_code == 504 and r.json()["component"] == "merger", r.text
    assert dt < 5  # stream_read_timeout_s 2
    r, dt = timed(lambda: httpx.get(f"{s.url}/merged/tail", timeout=10))
    assert r.status_code == 504 and r.json()["component"] == "merger" and dt < 3

    r, dt = timed(lambda: httpx.get(f"{s.url}/status", timeout=10))
    assert r.status_code == 503 and dt < 4
    doc = PipelineStatus.model_validate_json(r.content)
    assert doc.components.merger.status == "down"
    assert "no answer within" in (doc.components.merger.error or "")
    assert doc.components.generator.status == "degraded"

    r = httpx.get(f"{s.url}/readyz", timeout=10)
    assert r.status_code == 503 and r.json() == {"ready": False, "generator": False, "merger": False}

    # a gateway whose merger answers garbage: 502
    g = make_stack(tmp_path / "g", kafka)
    g.merger_port = garbage.port
    try:
        g.start("gateway")
        r, dt = timed(lambda: httpx.get(f"{g.url}/merged.csv", timeout=10))
        assert r.status_code == 502 and r.json()["component"] == "merger" and dt < 3
    finally:
        g.stop_all()
