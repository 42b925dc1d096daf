"""A gateway stack of real processes: the real gateway (`python -m services.gateway`) in front of the real
generator and merger, and a stand-in Spark job (`tests/gateway/standin_spark.py`: real Spark takes
a minute to start, and these tests kill and freeze it), on free ports, with a temp data folder and
a topic of its own on the session's real Kafka broker. The gateway sees URLs only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from contract.layout import DataLayout
from contract.pipeline_status import PipelineStatus
from devicestream.processes import free_ports
from tests.documents import devices, merger_status
from tests.helpers import ServiceProcess, wait_for
from tests.merger.batches import batch_text, write_batch
from tests.tiers import starts_processes

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BATCH_ROWS_MAX = 30_000
#: The one place the gateway's module is named.
GATEWAY_MODULE = "services.gateway"
#: The module each component of a stack runs as.
MODULES = {
    "generator": "services.generator",
    "merger": "services.merger",
    "spark": "tests.gateway.standin_spark",
    "gateway": GATEWAY_MODULE,
}


@dataclass
class Stack:
    tmp: Path
    bootstrap: str
    topic: str
    gateway_env: dict[str, str] = field(default_factory=dict)
    #: Settings of other components ({"merger": {...}}), under those given to `start`.
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)

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

    @property
    def rows_dir(self) -> Path:
        """Where the Spark job writes its batch files (and the merger reads them)."""
        return self.layout.spark_rows

    def _common(self) -> dict[str, str]:
        return {
            "DEVICESTREAM_DATA_DIR": str(self.data),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC": self.topic,
            "PYTHONUNBUFFERED": "1",
        }

    def log(self, name: str) -> Path:
        return self.tmp / "logs" / f"{name}.log"

    def _env(self, name: str) -> tuple[dict[str, str], str | None]:
        """The component's own settings and its readiness URL (None: not an HTTP service)."""
        if name == "generator":
            return {"GENERATOR_PORT": str(self.gen_port)}, f"{self.generator_url}/readyz"
        if name == "merger":
            own = {"MERGER_PORT": str(self.merger_port), "MERGER_RESCAN_INTERVAL_S": "0.5"}
            return own, f"{self.merger_url}/readyz"
        if name == "gateway":
            env = {
                "GATEWAY_PORT": str(self.gw_port),
                "GATEWAY_GENERATOR_URL": self.generator_url,
                "GATEWAY_MERGER_URL": self.merger_url,
                "GATEWAY_STATUS_CACHE_S": "0",
                **self.gateway_env,
            }
            return env, f"{self.url}/healthz"
        if name == "spark":
            return {}, None
        raise ValueError(name)

    def start(self, name: str, **extra_env: str) -> ServiceProcess:
        """Start a component (`extra_env` over its settings) and wait until it is ready."""
        own, ready_url = self._env(name)
        env = self._common() | own | self.component_env.get(name, {}) | extra_env
        proc = ServiceProcess(MODULES[name], env, self.log(name), ready_url)
        self.procs[name] = proc.start()
        if name == "spark":
            wait_for(self.layout.spark_progress.exists, 30, "stand-in spark progress.json", logs=[self.log(name)])
        return proc

    def start_all(self, *names: str) -> Stack:
        """Start `names` in order; if one fails, stop those already started."""
        try:
            for name in names:
                self.start(name)
        except BaseException:
            self.stop_all()
            raise
        return self

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.stop()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def logs(self) -> list[Path]:
        return [self.log(n) for n in MODULES]

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

    def merged_up_to(self, batch_id: int, timeout: float = 30) -> None:
        """Until the merger has merged batch `batch_id` and counted every merged row for /devices."""

        def done() -> bool:
            st = merger_status(self.merger_url)
            doc = devices(self.merger_url)
            return st.last_batch_id == batch_id and doc.covered_size == doc.committed_size

        wait_for(done, timeout, f"batch {batch_id} merged and counted", logs=self.logs())

    def merge_rows(self, n: int, timeout: float = 120) -> None:
        """Write `n` more valid rows as batch files (tests/merger/batches.py, at most 30,000 rows a
        batch: eventId and eventOffset stay distinct) and wait until the merger has merged them."""
        done = merger_status(self.merger_url).last_batch_id
        batch_id = -1 if done is None else done
        while n > 0:
            batch_id += 1
            write_batch(self.rows_dir, batch_id, batch_text(batch_id, min(n, BATCH_ROWS_MAX)))
            n -= BATCH_ROWS_MAX
        self.merged_up_to(batch_id, timeout)


def make_stack(tmp: Path, kafka: object, **gateway_env: str) -> Stack:
    return Stack(tmp, kafka.bootstrap, kafka.new_topic(partitions=3, prefix="gw"), gateway_env)


def start_stack(stack: Stack, *names: str) -> Iterator[Stack]:
    """For a fixture: start `names` in order, yield the stack, stop everything it started."""
    with stack:
        yield stack.start_all(*names)


@pytest.fixture
@starts_processes
def stack(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """The real generator and merger, the stand-in Spark job and the gateway, all up; overall ok."""
    s = make_stack(tmp_path, kafka, GATEWAY_SPARK_STALE_AFTER_S="3")
    for up in start_stack(s, "merger", "generator", "spark", "gateway"):
        up.wait_overall("ok")
        yield up


@pytest.fixture
@starts_processes
def bare_stack(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """Nothing started: the test starts what it needs."""
    yield from start_stack(make_stack(tmp_path, kafka))
