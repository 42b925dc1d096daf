"""The whole pipeline against a SASL_SSL-only Kafka: `devicestream up --secure` (the embedded broker
with SCRAM-SHA-512 and a CA made into the data folder), a counted generator run through Spark and the
merger, `devicestream verify` exit 0. Then a wrong password and an untrusted CA, each given to the
launcher, verify, the generator and the gateway: one clear line naming the component and the cause,
/status shows Kafka down with that reason, and no password appears in any log or response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract.checkpoint_topic import read_checkpoint_topic
from contract.kafka import PLAINTEXT
from contract.pipeline_status import PipelineStatus
from devicestream.kafka_tls import make_ca
from devicestream.processes import free_ports
from kafka_io.reachability import connection_failure
from tests.documents import generator_status
from tests.e2e.conftest import Stack, running_stack
from tests.helpers import ServiceProcess, devicestream_cli, wait_for
from tests.tiers import starts_processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

COUNT = 3_000
WRONG_PASSWORD = "not-the-password-0123456789"


@pytest.fixture(scope="module")
@starts_processes
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("secure-e2e"), ["--secure"]) as st:
        yield st


def password_of(st: Stack) -> str:
    return json.loads((st.data / "kafka" / "security" / "credentials.json").read_text())["password"]


def assert_no_secret(texts: dict[str, str], *secrets: str) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a password leaked into {where}"


def every_log(st: Stack, *extra: Path) -> dict[str, str]:
    files = [st.out_log, *sorted((st.data / "logs").glob("*.log")), *extra]
    return {str(p): p.read_text(errors="replace") for p in files if p.exists()}


def test_counted_run_through_spark_and_merger_verifies(secure_stack: Stack) -> None:
    st = secure_stack
    props = (st.data / "kafka" / "node-1" / "server.properties").read_text()
    listeners = next(line for line in props.splitlines() if line.startswith("listeners="))
    assert (
        listeners
        == f"listeners=SASL_SSL://{st.bootstrap},CONTROLLER://127.0.0.1:{st.env['DEVICESTREAM_KAFKA_CONTROLLER_PORT']}"
    )
    assert "secured" in st.out_log.read_text() and "SASL_SSL, SCRAM-SHA-512" in st.out_log.read_text()
    # nothing lets a plaintext client in
    assert asyncio.run(connection_failure(st.bootstrap, PLAINTEXT, 5.0)) is not None

    st.start_run(rate=1_000, count=COUNT, seed=19, invalid_ratio=0.02)
    ended = st.wait_run_ended()
    assert ended.state == "completed" and ended.acknowledged == COUNT, ended
    report = st.verify(wait_s=240)
    assert report.ok and report.records == COUNT and report.rows_in_merged > 0, report

    status = st.status()
    assert status.components.kafka.status == "ok", status.components.kafka
    # the job's topic-id admin client takes the source's SASL_SSL settings: the id is known (it was
    # never, and every batch waited out the failing ask: 11.5-13.1 s per batch)
    recorded = read_checkpoint_topic(st.data / "spark" / "checkpoint")
    assert recorded is not None and st.merger_status().topic_id == recorded.topic_id, st.merger_status()
    metrics = (
        httpx.get(f"{st.gateway}/metrics", timeout=10).text + httpx.get(f"{st.generator}/metrics", timeout=10).text
    )
    assert_no_secret(
        {**every_log(st), "/status": status.model_dump_json(), "/metrics": metrics, "verify": report.to_json()},
        password_of(st),
    )


def _bad_client_env(st: Stack, tmp_path: Path, case: str) -> tuple[dict[str, str], str]:
    """KAFKA_* for a client of the secured broker that gets one thing wrong, and the cause it must name."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": st.bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "devicestream",
        "KAFKA_SASL_PASSWORD": password_of(st),
        "KAFKA_SSL_CA_FILE": str(st.data / "kafka" / "security" / "ca.pem"),
    }
    if case == "wrong password":
        return {**env, "KAFKA_SASL_PASSWORD": WRONG_PASSWORD}, "authentication failed"
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_ca("someone else's CA")[0])
    return {**env, "KAFKA_SSL_CA_FILE": str(other_ca)}, "TLS certificate not trusted"


@pytest.mark.parametrize("case", ["wrong password", "untrusted CA"])
def test_bad_credentials_or_ca_end_in_one_clear_line(secure_stack: Stack, tmp_path: Path, case: str) -> None:
    st = secure_stack
    env, cause = _bad_client_env(st, tmp_path, case)
    data = tmp_path / "data"
    gw_port, gen_port, merger_port = free_ports(3)
    env |= {"DEVICESTREAM_DATA_DIR": str(data), "KAFKA_TOPIC": "devicestream.events"}
    outputs: dict[str, str] = {}

    # the launcher, pointed at the secured cluster, stops before starting anything
    up = devicestream_cli("up", "--components", "gateway", env={**env, "GATEWAY_PORT": str(gw_port)})
    outputs["devicestream up"] = up.stdout + up.stderr
    assert up.returncode == 1, outputs["devicestream up"]
    failed = [line for line in up.stdout.splitlines() if "start failed" in line]
    assert len(failed) == 1 and "kafka" in failed[0] and cause in failed[0], outputs["devicestream up"]

    # verify
    res = devicestream_cli("verify", "--json", env=env)
    outputs["devicestream verify"] = res.stdout + res.stderr
    assert res.returncode == 2, outputs["devicestream verify"]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("devicestream verify: cannot run: kafka") and cause in lines[0], (
        lines
    )

    # the generator: not connected, the cause in its status and its log
    gen_log, gw_log = tmp_path / "generator.log", tmp_path / "gateway.log"
    gen_env = {**env, "GENERATOR_PORT": str(gen_port)}
    gw_env = {
        **env,
        "GATEWAY_PORT": str(gw_port),
        "GATEWAY_GENERATOR_URL": f"http://127.0.0.1:{gen_port}",
        "GATEWAY_MERGER_URL": f"http://127.0.0.1:{merger_port}",
    }
    gen_url = f"http://127.0.0.1:{gen_port}"
    with (
        ServiceProcess("services.generator", gen_env, gen_log, f"{gen_url}/healthz"),
        ServiceProcess("services.gateway", gw_env, gw_log, f"http://127.0.0.1:{gw_port}/healthz"),
    ):
        gen_status = wait_for(
            lambda: (s := generator_status(gen_url)).last_error and s,
            60,
            "the generator to report why it cannot connect",
            logs=[gen_log],
        )
        assert not gen_status.connected and cause in gen_status.last_error, gen_status
        status = httpx.get(f"http://127.0.0.1:{gw_port}/status", timeout=30)
        kafka = PipelineStatus.model_validate_json(status.content).components.kafka
        assert kafka.status == "down" and any(cause in r for r in kafka.reasons), kafka
        outputs["/status"] = status.text
        outputs["/generator/status"] = gen_status.model_dump_json()
        outputs["/metrics"] = httpx.get(f"http://127.0.0.1:{gw_port}/metrics", timeout=10).text
        outputs["generator /metrics"] = httpx.get(f"{gen_url}/metrics", timeout=10).text
        wait_for(lambda: cause in gen_log.read_text(), 30, "the generator to log the cause", logs=[gen_log])
    gen_lines = [line for line in gen_log.read_text().splitlines() if cause in line]
    assert gen_lines and all(" generator " in line for line in gen_lines), gen_lines[:3]

    outputs |= {str(p): p.read_text(errors="replace") for p in (gen_log, gw_log)}
    outputs |= {str(p): p.read_text(errors="replace") for p in data.rglob("*.log")}
    assert_no_secret(outputs, WRONG_PASSWORD, password_of(st))
