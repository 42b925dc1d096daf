"""schemathesis against the live gateway's OpenAPI: no 5xx for any generated request."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import Stack, make_stack
from tests.helpers import REPO_ROOT


@pytest.fixture
def healthy(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    s = make_stack(tmp_path, kafka)
    try:
        s.start("merger")
        # the fuzzer will start runs at any allowed rate: this generator only counts, no Kafka
        s.start("generator", KAFKA_BOOTSTRAP_SERVERS="")
        s.start("spark")
        s.start("gateway")
        s.wait_overall("ok")
        yield s
    finally:
        s.stop_all()


def test_schemathesis_finds_no_server_error(healthy: Stack, tmp_path: Path) -> None:
    report = tmp_path / "schemathesis.txt"
    cmd = [
        str(REPO_ROOT / ".venv/bin/schemathesis"),
        "run",
        f"{healthy.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--request-timeout",
        "10",
        "--generation-deterministic",
        "--workers",
        "1",
    ]
    with report.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=420, cwd=tmp_path, check=False)
    text = report.read_text()
    assert proc.returncode == 0, text[-6000:]
    m = re.search(r"(\d+) generated, (\d+) passed", text)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 50, text[-6000:]
