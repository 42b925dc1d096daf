"""schemathesis with every check (tests/contract_api/schemathesis.toml) against the live OpenAPI
documents of all three APIs, each a real service: the generator (on the session's broker), the
merger, and the gateway in front of them (with an API key for its writes). Every schema-valid
request must be taken, every other one refused (by the schema: a 422 naming the field), every
answer must match its documented status, content type, headers and schema, and the documented
authentication must be checked. A bounded, deterministic number of cases; a failure shows
schemathesis's report with the request that reproduces it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.internal import HEADER
from tests.gateway.conftest import Stack, make_stack
from tests.helpers import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CONFIG = Path(__file__).with_name("schemathesis.toml")
SECRET = "schemathesis-internal-secret"
API_KEY = "schemathesis-api-key"
#: Cases per operation and phase: enough to reach every parameter, bounded for a loaded 2-core machine.
MAX_EXAMPLES = 5
SEED = 26


@pytest.fixture
def services(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """The real generator (at most 200 events/s: the runs schemathesis starts stay small) and merger
    behind the internal secret, a stand-in Spark job (progress.json for /status), and the gateway."""
    s = make_stack(tmp_path, kafka)
    try:
        s.start("merger", DEVICESTREAM_INTERNAL_SECRET=SECRET)
        s.start("generator", DEVICESTREAM_INTERNAL_SECRET=SECRET, GENERATOR_MAX_RATE="200")
        s.start("spark")
        s.start("gateway", DEVICESTREAM_INTERNAL_SECRET=SECRET, GATEWAY_API_KEY=API_KEY)
        s.wait_overall("ok", timeout=60)
        yield s
    finally:
        s.stop_all()


def schemathesis(base_url: str, tmp: Path, name: str, header: str) -> tuple[subprocess.Popen, Path]:
    """Start schemathesis on `base_url`'s OpenAPI document, its report in a file."""
    report = tmp / f"schemathesis-{name}.txt"
    cmd = [
        str(REPO_ROOT / ".venv/bin/schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--request-timeout",
        "120",  # GET /report draws its charts: seconds on a loaded machine
        "--workers",
        "1",
        "-H",
        header,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # the hooks module
    with report.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env)
    return proc, report


def test_every_api_takes_what_its_openapi_declares_and_only_that(services: Stack, tmp_path: Path) -> None:
    runs = {
        "merger": schemathesis(services.merger_url, tmp_path, "merger", f"{HEADER}: {SECRET}"),
        "generator": schemathesis(services.generator_url, tmp_path, "generator", f"{HEADER}: {SECRET}"),
        "gateway": schemathesis(services.url, tmp_path, "gateway", f"X-API-Key: {API_KEY}"),
    }
    problems = []
    try:
        for name, (proc, report) in runs.items():  # the three at once: the services mostly wait
            code = proc.wait(timeout=600)
            text = report.read_text()
            m = re.search(r"(\d+) generated, (\d+) passed", text)
            if code != 0 or not (m and m.group(1) == m.group(2)):
                # schemathesis's report: each failure with the curl command that reproduces it
                failures = text[text.find("FAILURES") :] if "FAILURES" in text else text
                problems.append(f"schemathesis on the {name} (exit {code}):\n{failures[-12000:]}")
    finally:
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not problems, "\n\n".join(problems)
