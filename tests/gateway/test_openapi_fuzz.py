"""schemathesis against the live OpenAPI documents of all three APIs (gateway, generator, merger),
with its response-conformance checks: no 5xx, every status code documented, every content type
documented, every body valid against its documented schema."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.internal import HEADER
from tests.gateway.conftest import Stack, make_stack
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SECRET = "fuzz-internal-secret"


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


@pytest.fixture
def services(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """The real generator (on the session's broker, at most 200 events/s) and the real merger."""
    s = make_stack(tmp_path, kafka)
    try:
        s.start("merger", real=True, DEVICESTREAM_INTERNAL_SECRET=SECRET)
        s.start("generator", real=True, DEVICESTREAM_INTERNAL_SECRET=SECRET, GENERATOR_MAX_RATE="200")
        yield s
    finally:
        s.stop_all()


def _fuzz(base_url: str, tmp: Path, name: str, *, min_cases: int, headers: dict[str, str] | None = None) -> None:
    report = tmp / f"schemathesis-{name}.txt"
    cmd = [
        str(REPO_ROOT / ".venv/bin/schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        "20",
        "--request-timeout",
        "10",
        "--generation-deterministic",
        "--workers",
        "1",
    ]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    with report.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=420, cwd=tmp, check=False)
    text = report.read_text()
    assert proc.returncode == 0, f"{name}:\n{text[-8000:]}"
    m = re.search(r"(\d+) generated, (\d+) passed", text)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > min_cases, f"{name}:\n{text[-8000:]}"


def test_gateway_conforms_to_its_openapi(healthy: Stack, tmp_path: Path) -> None:
    _fuzz(healthy.url, tmp_path, "gateway", min_cases=50)


def test_generator_and_merger_conform_to_their_openapi(services: Stack, tmp_path: Path) -> None:
    _fuzz(services.generator_url, tmp_path, "generator", min_cases=20, headers={HEADER: SECRET})
    _fuzz(services.merger_url, tmp_path, "merger", min_cases=5, headers={HEADER: SECRET})
