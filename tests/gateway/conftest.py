"""A gateway stack of real processes: the real gateway (`python -m services.gateway`) in front of stand-in
generator, Spark and merger processes that speak the documented contracts, on free ports, with a
temp data folder and a topic of its own on the session's real Kafka broker. Swapping the stand-ins
for the real services changes only the modules started here (the gateway sees URLs only)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from contract.layout import DataLayout
from contract.pipeline_status import PipelineStatus
from devicestream.processes import free_ports
from tests.helpers import ServiceProcess, wait_for
from tests.tiers import starts_processes

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Stack:
    tmp: Path
    bootstrap: str
    topic: str
    gateway_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = self.tmp / "data"
        self.layout = DataLayout(self.data)
        self.gen_port, self.merger_port, self.gw_port = free_ports(3)
        self.procs: dict[str, ServiceProcess] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gw_port}"

    @property
    def merger_url(self) -> str:
        return f"http://127.0.0.1:{self.merger_port}"

    @property
    def generator_url(self) -> str:
        return f"http://127.0.0.1:{self.gen_port}"

    def _common(self) -> dict[str, str]:
        return {
            "DEVICESTREAM_DATA_DIR": str(self.data),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC": self.topic,
            "PYTHONUNBUFFERED": "1",
        }

    def log(self, name: str) -> Path:
        return self.tmp / "logs" / f"{name}.log"

    def start(self, name: str, *, real: bool = False, **extra_env: str) -> ServiceProcess:
        """Start a stand-in, or with `real` the real generator/merger service (python -m services.x)."""
        env = self._common() | extra_env
        if real and name in ("generator", "merger"):
            port = self.gen_port if name == "generator" else self.merger_port
            base = self.generator_url if name == "generator" else self.merger_url
            env[f"{name.upper()}_PORT"] = str(port)
            proc = ServiceProcess(f"services.{name}", env, self.log(name), f"{base}/readyz")
        elif name == "generator":
            env["STANDIN_PORT"] = str(self.gen_port)
            proc = ServiceProcess(
                "tests.gateway.standins.generator", env, self.log(name), f"{self.generator_url}/healthz"
            )
        elif name == "merger":
            env["STANDIN_PORT"] = str(self.merger_port)
            proc = ServiceProcess("tests.gateway.standins.merger", env, self.log(name), f"{self.merger_url}/healthz")
        elif name == "spark":
            proc = ServiceProcess("tests.gateway.standins.spark", env, self.log(name), None)
        elif name == "gateway":
            env |= {
                "GATEWAY_PORT": str(self.gw_port),
                "GATEWAY_GENERATOR_URL": self.generator_url,
                "GATEWAY_MERGER_URL": self.merger_url,
                "GATEWAY_STATUS_CACHE_S": "0",
                **self.gateway_env,
            }
            proc = ServiceProcess("services.gateway", env, self.log(name), f"{self.url}/healthz")
        else:
            raise ValueError(name)
        self.procs[name] = proc.start()
        if name == "spark":
            wait_for(self.layout.spark_progress.exists, 30, "stand-in spark progress.json", logs=[self.log(name)])
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.stop()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def logs(self) -> list[Path]:
        return [self.log(n) for n in ("gateway", "generator", "merger", "spark")]

    def status(self) -> httpx.Response:
        return httpx.get(f"{self.url}/status", timeout=10)

    def pipeline(self) -> PipelineStatus:
        """GET /status read with its contract model (200 when ok or degraded, 503 when down)."""
        return PipelineStatus.model_validate_json(self.status().content)

    def wait_overall(self, want: str, timeout: float = 30, reason: str | None = None) -> PipelineStatus:
        def check() -> PipelineStatus | None:
            doc = self.pipeline()
            if doc.overall == want and (reason is None or any(reason in r for r in doc.reasons)):
                return doc
            return None

        return wait_for(check, timeout, f"overall {want} (reason containing {reason!r})", logs=self.logs())


def make_stack(tmp: Path, kafka: object, **gateway_env: str) -> Stack:
    return Stack(tmp, kafka.bootstrap, kafka.new_topic(partitions=3, prefix="gw"), gateway_env)


@pytest.fixture
@starts_processes
def stack(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """Generator, Spark and merger stand-ins and the gateway, all up; overall ok."""
    s = make_stack(tmp_path, kafka, GATEWAY_SPARK_STALE_AFTER_S="3")
    try:
        for name in ("merger", "generator", "spark", "gateway"):
            s.start(name)
        s.wait_overall("ok")
        yield s
    finally:
        s.stop_all()


@pytest.fixture
@starts_processes
def bare_stack(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """Nothing started: the test starts what it needs."""
    s = make_stack(tmp_path, kafka)
    try:
        yield s
    finally:
        s.stop_all()
