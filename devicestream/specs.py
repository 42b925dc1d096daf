"""What the launcher runs: one ComponentSpec per component (its command, log, readiness probe, what
it depends on), and what every component is told through its environment.

The launcher never imports a component: it runs each as a process (`python -m services.x`,
`spark-submit spark_job/job.py`, `java kafka.Kafka`) and judges readiness from outside (`/readyz`,
the Spark progress file, a Kafka metadata request)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contract.checkpoint_topic import FILE_NAME as CHECKPOINT_TOPIC_FILE
from contract.internal import ENV_NAME as INTERNAL_SECRET_ENV
from contract.kafka import KafkaSecurity
from contract.progress import read_progress_or_none
from devicestream.kafka_broker import KafkaCluster
from devicestream.paths import REPO_ROOT, jars_dir, venv_bin
from devicestream.settings import LauncherSettings
from kafka_io.admin import BrokerError, wait_until_ready

Probe = Callable[[], Awaitable[bool]]


@dataclass
class ComponentSpec:
    name: str
    argv: list[str]
    log_file: Path
    ready: Probe
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0
    prestart: Callable[[], None] | None = None
    #: pid to send SIGTERM to for a graceful stop (default: the whole process group)
    #: (given the component's pid, which is its process group's id)
    graceful_pid: Callable[[int], int | None] | None = None
    #: consecutive specs of one quorum ("kafka" for 2+ brokers): started together, since no node is
    #: ready before a majority runs; stopped last-first, the final node with a short grace
    quorum: str = ""
    #: components (or a quorum's name) its readiness depends on: while one of them is not ready,
    #: its own unreadiness is theirs (the generator without Kafka, the gateway without the merger)
    #: and does not count towards the unready restart; one not run by this launcher never is
    depends_on: tuple[str, ...] = ()
    #: the one-line reason of a component that exited with EXIT_REFUSED (contract/launcher.py)
    refusal: Callable[[], str | None] | None = None
    #: whether the cause of its refusal is gone (then the launcher starts it again)
    retry_when: Callable[[], bool] | None = None


# ---- readiness probes ---------------------------------------------------------------------------


def http_probe(client: httpx.AsyncClient, url: str) -> Probe:
    async def probe() -> bool:
        try:
            return (await client.get(url, timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def spark_probe(progress: Path, since: Callable[[], float]) -> Probe:
    async def probe() -> bool:
        doc = read_progress_or_none(progress)
        return doc is not None and doc.state == "running" and (doc.started_at or 0) >= since() - 1.0

    return probe


def kafka_probe(bootstrap: str, security: KafkaSecurity) -> Probe:
    async def probe() -> bool:
        try:
            await wait_until_ready(bootstrap, 3.0, security=security)
            return True
        except BrokerError:
            return False

    return probe


def spark_refusal(progress: Path) -> Callable[[], str | None]:
    """The job's lastError when it failed (its one-line refusal)."""

    def reason() -> str | None:
        doc = read_progress_or_none(progress)
        return doc.last_error if doc is not None and doc.state == "failed" else None

    return reason


def spark_driver_pid(progress: Path) -> Callable[[int], int | None]:
    """The Python driver's pid, from the job's progress file, if it belongs to this spark-submit: a
    SIGTERM there stops the query after its current batch (SIGTERM to the JVM would not)."""

    def pid(group: int) -> int | None:
        doc = read_progress_or_none(progress)
        if doc is None or not doc.pid:
            return None
        driver = doc.pid
        try:
            return driver if os.getpgid(driver) == group else None
        except ProcessLookupError:
            return None

    return pid


# ---- the specs, in start order ------------------------------------------------------------------


def build_specs(
    settings: LauncherSettings, client: httpx.AsyncClient, cluster: KafkaCluster | None
) -> list[ComponentSpec]:
    """broker node(s) -> Spark job -> merger -> generator -> gateway, those of them wanted and present."""
    specs = kafka_specs(settings, cluster) if cluster is not None else []
    wanted = settings.component_list()
    if "spark" in wanted and (REPO_ROOT / "spark_job" / "job.py").exists():
        specs.append(spark_spec(settings))
    return specs + service_specs(settings, client)


def kafka_specs(settings: LauncherSettings, cluster: KafkaCluster) -> list[ComponentSpec]:
    specs = []
    for node in cluster.nodes:
        name = "kafka" if len(cluster.nodes) == 1 else f"kafka-{node.node_id}"

        def prepare(node=node) -> None:
            cluster.prepare(node)

        specs.append(
            ComponentSpec(
                name=name,
                argv=cluster.command(node),
                log_file=settings.layout.logs_dir / f"{name}.log",
                ready=kafka_probe(node.address, cluster.client_security),
                url=node.address,
                prestart=prepare,
                ready_timeout_s=settings.ready_timeout_s,
                quorum="kafka" if len(cluster.nodes) > 1 else "",
            )
        )
    return specs


def java_options_conf(options: str) -> list[str]:
    """spark-submit arguments giving the driver JVM `options` (none when empty)."""
    return ["--conf", f"spark.driver.defaultJavaOptions={options}"] if options.strip() else []


def spark_spec(settings: LauncherSettings) -> ComponentSpec:
    layout = settings.layout
    py = sys.executable
    launched: dict[str, float] = {"t": time.time()}
    jars = ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))
    return ComponentSpec(
        name="spark",
        argv=[
            venv_bin("spark-submit"),
            "--master",
            settings.spark_master,
            "--name",
            "devicestream",
            "--driver-memory",
            settings.spark_driver_memory,
            "--jars",
            jars,
            "--conf",
            "spark.ui.showConsoleProgress=false",
            *java_options_conf(settings.spark_driver_java_options),
            str(REPO_ROOT / "spark_job" / "job.py"),
        ],
        log_file=layout.logs_dir / "spark.log",
        ready=spark_probe(layout.spark_progress, lambda: launched["t"]),
        url=str(layout.spark_rows),
        env={"PYSPARK_PYTHON": py, "PYSPARK_DRIVER_PYTHON": py},
        ready_timeout_s=settings.spark_ready_timeout_s,
        prestart=lambda: launched.__setitem__("t", time.time()),
        graceful_pid=spark_driver_pid(layout.spark_progress),
        depends_on=("kafka",),
        refusal=spark_refusal(layout.spark_progress),
        # it refuses a checkpoint of a recreated topic: retried once that checkpoint is moved aside
        retry_when=lambda: not (layout.spark_checkpoint / CHECKPOINT_TOPIC_FILE).exists(),
    )


def service_specs(settings: LauncherSettings, client: httpx.AsyncClient) -> list[ComponentSpec]:
    services = [
        ("merger", "services.merger", settings.merger_port, ()),
        ("generator", "services.generator", settings.generator_port, ("kafka",)),
        ("gateway", "services.gateway", settings.gateway_port, ("generator", "merger")),
    ]
    wanted = settings.component_list()
    specs = []
    for name, module, port, depends_on in services:
        if name not in wanted or not (REPO_ROOT / Path(*module.split(".")) / "__main__.py").exists():
            continue
        base = f"http://{settings.host}:{port}"
        specs.append(
            ComponentSpec(
                name=name,
                argv=[sys.executable, "-m", module],
                log_file=settings.layout.logs_dir / f"{name}.log",
                ready=http_probe(client, f"{base}/readyz"),
                url=base + ("/" if name == "gateway" else "/docs"),
                ready_timeout_s=settings.ready_timeout_s,
                depends_on=depends_on,
            )
        )
    return specs


# ---- what every component is told ---------------------------------------------------------------


def child_env(settings: LauncherSettings, bootstrap: str) -> dict[str, str]:
    """What every component is told: where Kafka is, the topic, the data folder, each other's ports."""
    host = settings.host
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": settings.topic,
        "DEVICESTREAM_DATA_DIR": str(settings.data_dir.resolve()),
        "SPARK_MASTER": settings.spark_master,
        "GENERATOR_PORT": str(settings.generator_port),
        "MERGER_PORT": str(settings.merger_port),
        "GATEWAY_PORT": str(settings.gateway_port),
        "GENERATOR_HOST": host,
        "MERGER_HOST": host,
        "GATEWAY_HOST": os.environ.get("GATEWAY_HOST", host),
        "GATEWAY_GENERATOR_URL": f"http://{host}:{settings.generator_port}",
        "GATEWAY_MERGER_URL": f"http://{host}:{settings.merger_port}",
        # the gateway's credential towards the generator and merger: fresh per stack unless given
        INTERNAL_SECRET_ENV: os.environ.get(INTERNAL_SECRET_ENV) or secrets.token_urlsafe(32),
        "PYTHONUNBUFFERED": "1",
    }


def wrapped_argv(spec: ComponentSpec, settings: LauncherSettings) -> list[str]:
    """The component's command run through devicestream.logpump (rotated log, own process group)."""
    return [
        sys.executable,
        "-m",
        "devicestream.logpump",
        str(spec.log_file),
        str(settings.log_max_bytes),
        str(settings.log_backups),
        "--",
        *spec.argv,
    ]
