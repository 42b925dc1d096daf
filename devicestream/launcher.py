"""`devicestream up`: start the pipeline on this machine, in order, each component after the previous
one is ready; supervise them (a component that dies is reported and restarted with backoff); stop
them in reverse order on Ctrl-C / SIGTERM, gracefully first.

broker -> topic -> Spark job -> merger -> generator -> gateway

The launcher never imports a component: it runs each as a process (`python -m services.x`,
`spark-submit spark_job/job.py`, `java kafka.Kafka`) and judges readiness from outside (`/readyz`,
the Spark progress file, a Kafka metadata request). Its own state is kept in <data>/run/launcher.json
so that `devicestream status` and `down` work from another shell, and the gateway can show restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from aiokafka.errors import KafkaError

from contract.files import atomic_write_json, read_json
from contract.internal import ENV_NAME as INTERNAL_SECRET_ENV
from contract.kafka import KafkaSecurity, failure_reason
from contract.layout import DataLayout
from devicestream.kafka_broker import LAST_NODE_GRACE_S, BrokerError, KafkaCluster, ensure_topic, wait_until_ready
from devicestream.kafka_tls import ensure_broker_security
from devicestream.paths import REPO_ROOT, jars_dir, venv_bin
from devicestream.processes import ProcessIdentity, group_members, kill_group, log_tail, stop_group, stop_wrapper
from devicestream.settings import LauncherSettings

log = logging.getLogger("devicestream.launcher")


class LaunchError(RuntimeError):
    """The stack could not be started; the message says what to fix."""


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


@dataclass
class Running:
    spec: ComponentSpec
    proc: subprocess.Popen | None = None
    state: str = "pending"  # pending | starting | ready | restarting | stopping | stopped | failed
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    #: set once the component was first ready: from then on the supervisor restarts it when it dies
    supervised: bool = False
    #: the devicestream.logpump wrapper (the launcher's child) as launched
    wrapper: ProcessIdentity | None = None
    #: the component itself, its process group's leader (the wrapper's child): what `down` checks
    leader: ProcessIdentity | None = None
    #: why it was last restarted ("exited with code -9", "not ready for 60s")
    cause: str = ""
    #: when its readiness probe started failing while it was running (None: passing)
    unready_since: float | None = None
    #: a cause set by the launcher when it stops the component itself (not ready past the deadline)
    pending_cause: str = ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def component_pid(self) -> int | None:
        """The component's pid (its process group's id), once the wrapper has started it."""
        self.refresh_leader()
        return self.leader.pid if self.leader else None

    def refresh_leader(self) -> None:
        """Record the component's identity: the wrapper's child; again while it runs, since its
        command line changes when it execs (spark-submit becomes java)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader is None:
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(self.proc.pid).children()
                if children:
                    self.leader = ProcessIdentity.of(children[0].pid)
        elif (now := ProcessIdentity.of(self.leader.pid)) is not None and now.create_time == self.leader.create_time:
            self.leader = now


# ---- building the component specs ------------------------------------------------------------


def http_probe(client: httpx.AsyncClient, url: str) -> Probe:
    async def probe() -> bool:
        try:
            return (await client.get(url, timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def spark_probe(progress: Path, since: Callable[[], float]) -> Probe:
    async def probe() -> bool:
        doc = read_json(progress)
        return (
            isinstance(doc, dict)
            and doc.get("state") == "running"
            and float(doc.get("startedAt") or 0) >= since() - 1.0
        )

    return probe


def kafka_probe(bootstrap: str, security: KafkaSecurity) -> Probe:
    async def probe() -> bool:
        try:
            await wait_until_ready(bootstrap, 3.0, security=security)
            return True
        except BrokerError:
            return False

    return probe


def spark_driver_pid(progress: Path) -> Callable[[subprocess.Popen], int | None]:
    """The Python driver's pid, from the job's progress file, if it belongs to this spark-submit: a
    SIGTERM there stops the query after its current batch (SIGTERM to the JVM would not)."""

    def pid(group: int) -> int | None:
        doc = read_json(progress)
        if not isinstance(doc, dict) or not doc.get("pid"):
            return None
        driver = int(doc["pid"])
        try:
            return driver if os.getpgid(driver) == group else None
        except ProcessLookupError:
            return None

    return pid


def build_specs(
    settings: LauncherSettings, client: httpx.AsyncClient, cluster: KafkaCluster | None
) -> list[ComponentSpec]:
    layout = settings.layout
    logs = layout.logs_dir
    wanted = settings.component_list()
    host = settings.host
    specs: list[ComponentSpec] = []

    if cluster is not None:
        for node in cluster.nodes:
            name = "kafka" if len(cluster.nodes) == 1 else f"kafka-{node.node_id}"

            def prepare(node=node) -> None:
                cluster.prepare(node)

            specs.append(
                ComponentSpec(
                    name=name,
                    argv=cluster.command(node),
                    log_file=logs / f"{name}.log",
                    ready=kafka_probe(node.address, cluster.client_security),
                    url=node.address,
                    prestart=prepare,
                    ready_timeout_s=settings.ready_timeout_s,
                    quorum="kafka" if len(cluster.nodes) > 1 else "",
                )
            )

    py = sys.executable
    if "spark" in wanted and (REPO_ROOT / "spark_job" / "job.py").exists():
        launched: dict[str, float] = {"t": time.time()}
        jars = ",".join(str(p) for p in sorted(jars_dir("spark").glob("*.jar")))
        spec = ComponentSpec(
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
                str(REPO_ROOT / "spark_job" / "job.py"),
            ],
            log_file=logs / "spark.log",
            ready=spark_probe(layout.spark_progress, lambda: launched["t"]),
            url=str(layout.spark_rows),
            env={"PYSPARK_PYTHON": py, "PYSPARK_DRIVER_PYTHON": py},
            ready_timeout_s=settings.spark_ready_timeout_s,
            prestart=lambda: launched.__setitem__("t", time.time()),
            graceful_pid=spark_driver_pid(layout.spark_progress),
            depends_on=("kafka",),
        )
        specs.append(spec)

    services = [
        ("merger", "services.merger", settings.merger_port, ()),
        ("generator", "services.generator", settings.generator_port, ("kafka",)),
        ("gateway", "gateway", settings.gateway_port, ("generator", "merger")),
    ]
    for name, module, port, depends_on in services:
        if name not in wanted or not (REPO_ROOT / Path(*module.split(".")) / "__main__.py").exists():
            continue
        base = f"http://{host}:{port}"
        specs.append(
            ComponentSpec(
                name=name,
                argv=[py, "-m", module],
                log_file=logs / f"{name}.log",
                ready=http_probe(client, f"{base}/readyz"),
                url=base + ("/" if name == "gateway" else "/docs"),
                ready_timeout_s=settings.ready_timeout_s,
                depends_on=depends_on,
            )
        )
    return specs


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


def dependencies_ready(spec: ComponentSpec, components: list[Running]) -> bool:
    """Whether every component `spec` depends on runs here and is ready (a quorum: every node)."""
    for dep in spec.depends_on:
        matches = [c for c in components if dep in (c.spec.name, c.spec.quorum)]
        if not matches or any(c.state != "ready" for c in matches):
            return False
    return True


# ---- pre-flight checks ------------------------------------------------------------------------


def check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise LaunchError(
            f"the data folder {data_dir} is not writable ({e.strerror}): fix its permissions or point "
            f"DEVICESTREAM_DATA_DIR at a writable folder"
        ) from e


def check_port_free(host: str, port: int, setting: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise LaunchError(
                f"port {host}:{port} is already in use ({e.strerror}): stop what holds it "
                f"(`devicestream down` if it is an earlier stack) or set {setting}"
            ) from e


# ---- the supervisor ---------------------------------------------------------------------------


class Supervisor:
    def __init__(self, settings: LauncherSettings, out: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.layout: DataLayout = settings.layout
        self.out = out
        self.components: list[Running] = []
        self.stopping = asyncio.Event()
        self.env: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self.identity = ProcessIdentity.of(os.getpid())

    # state file -----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.layout.run_dir / "launcher.json"

    def write_state(self) -> None:
        atomic_write_json(
            self.state_file,
            {
                "pid": os.getpid(),
                "launcher": self.identity.model_dump() if self.identity else None,
                "bootstrap": self.env.get("KAFKA_BOOTSTRAP_SERVERS", ""),
                "updated_at": time.time(),
                "stopping": self.stopping.is_set(),
                "components": {
                    r.spec.name: {
                        "state": r.state,
                        "pid": r.component_pid(),
                        "leader": r.leader.model_dump() if r.leader else None,
                        "wrapper": r.wrapper.model_dump() if r.wrapper else None,
                        "cause": r.cause,
                        "url": r.spec.url,
                        "log": str(r.spec.log_file),
                        "restarts": r.restarts,
                        "last_exit": r.last_exit,
                        "started_at": r.started_at,
                        "ready_at": r.ready_at,
                    }
                    for r in self.components
                },
            },
            durable=False,
        )

    # lifecycle ------------------------------------------------------------------------------

    def _spawn(self, r: Running) -> None:
        spec = r.spec
        if spec.prestart:
            spec.prestart()
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = wrapped_argv(spec, self.settings)
        with open(spec.log_file, "ab") as out:
            out.write(
                f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {spec.name}: {spec.argv[:3]}...\n".encode()
            )
            out.flush()
            # The wrapper leads a session of its own (the component's process group) and writes the
            # component's output to its rotated log; its own errors go to the same file.
            r.proc = subprocess.Popen(
                argv,
                env={**os.environ, **self.env, **spec.env},
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        r.wrapper, r.leader = ProcessIdentity.of(r.proc.pid, cmdline=argv), None
        r.state, r.started_at, r.ready_at, r.unready_since = "starting", time.time(), None, None
        self.write_state()

    async def _await_ready(self, r: Running, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while True:
            if not r.alive():
                assert r.proc is not None
                raise LaunchError(
                    f"{r.spec.name} exited with code {r.proc.returncode} before it was ready; "
                    f"log {r.spec.log_file}:\n{log_tail(r.spec.log_file)}"
                )
            if await r.spec.ready():
                r.state, r.ready_at, r.supervised = "ready", time.time(), True
                self.write_state()
                return
            if time.monotonic() > end:
                raise LaunchError(
                    f"{r.spec.name} not ready within {deadline_s:.0f}s; log {r.spec.log_file}:\n"
                    f"{log_tail(r.spec.log_file)}"
                )
            await asyncio.sleep(0.25)

    def _line(self, r: Running) -> str:
        pid = r.component_pid() or "-"
        return f"  {r.spec.name:<10} {r.state:<10} pid {pid!s:<8} {r.spec.url:<34} log {r.spec.log_file}"

    async def start(self, specs: list[ComponentSpec], after: dict[str, Callable[[], Awaitable[None]]]) -> None:
        """Start `specs` in order, each once the previous is ready (a quorum's nodes all at once, then
        wait for each); run `after[name]` once `name` is."""
        for _, stage in itertools.groupby(specs, key=lambda s: s.quorum or s.name):
            if self.stopping.is_set():
                return
            started = [Running(spec) for spec in stage]
            for r in started:
                self.components.append(r)
                self._spawn(r)
            results = await asyncio.gather(
                *(self._await_ready(r, r.spec.ready_timeout_s) for r in started), return_exceptions=True
            )
            for res in results:
                if isinstance(res, BaseException):
                    raise res
            for r in started:
                self.out(self._line(r))
                if r.spec.name in after:
                    await after[r.spec.name]()

    async def supervise(self) -> None:
        """Until stopping: restart a component that died (or that watch_readiness stopped), with
        exponential backoff."""
        backoff: dict[str, float] = {}
        watchdog = asyncio.create_task(self.watch_readiness())
        while not self.stopping.is_set():
            for r in self.components:
                if (
                    r.supervised
                    and r.state in ("ready", "unready", "starting")
                    and r.proc is not None
                    and r.proc.poll() is not None
                ):
                    r.last_exit = r.proc.returncode
                    r.cause = r.pending_cause or f"exited with code {r.last_exit}"
                    r.pending_cause = ""
                    if r.leader is not None:
                        kill_group(r.leader)  # whatever of its group outlived it
                    r.state = "restarting"
                    r.restarts += 1
                    delay = backoff.get(r.spec.name, 0.5)
                    if r.ready_at and time.time() - r.ready_at > 60:
                        delay = 0.5  # it had been healthy for a while: start over
                    backoff[r.spec.name] = min(delay * 2, self.settings.restart_backoff_max_s)
                    self.write_state()
                    self.out(
                        f"  {r.spec.name} {r.cause}: restarting in {delay:.1f}s "
                        f"(restart #{r.restarts}); last lines of {r.spec.log_file}:\n"
                        + "\n".join(f"    | {line}" for line in log_tail(r.spec.log_file, 8).splitlines())
                    )
                    log.warning("%s %s: restart #%d in %.1fs", r.spec.name, r.cause, r.restarts, delay)
                    task = asyncio.create_task(self._restart(r, delay))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog

    async def watch_readiness(self, interval_s: float = 1.0) -> None:
        """A running component whose readiness probe keeps failing for `unready_restart_s` (alive
        but stuck: a dead merge loop, a wedged JVM) is stopped with that cause; the supervise loop
        then restarts it like one that died."""
        while not self.stopping.is_set():
            watched = [
                r
                for r in self.components
                if r.supervised and r.state in ("ready", "unready") and r.alive() and not r.pending_cause
            ]
            results = await asyncio.gather(*(r.spec.ready() for r in watched), return_exceptions=True)
            now = time.monotonic()
            for r, ok in zip(watched, results, strict=True):
                if ok is True:
                    if r.state == "unready":
                        r.state, r.unready_since = "ready", None
                        self.write_state()
                        self.out(f"  {r.spec.name} ready again")
                elif r.state != "unready":
                    r.state, r.unready_since = "unready", now
                    self.write_state()
                    log.warning("%s: readiness probe failing", r.spec.name)
                elif not dependencies_ready(r.spec, self.components):
                    r.unready_since = now  # not its own fault: wait for what it depends on
                elif now - (r.unready_since or now) >= self.settings.unready_restart_s:
                    await self._stop_stuck(r, f"not ready for {now - r.unready_since:.0f}s (readiness probe failing)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval_s)

    async def _stop_stuck(self, r: Running, cause: str) -> None:
        """Stop a live component that is not ready, so that the supervise loop restarts it."""
        r.pending_cause = cause
        self.out(f"  {r.spec.name} {cause}: stopping it to restart it")
        log.error("%s %s: stopping it to restart it", r.spec.name, cause)
        await asyncio.to_thread(self._terminate, r, self.settings.stop_timeout_s)

    async def _restart(self, r: Running, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        if self.stopping.is_set():
            return
        self._spawn(r)
        try:
            await self._await_ready(r, r.spec.ready_timeout_s)
            self.out(f"  {r.spec.name} ready again (restart #{r.restarts})")
        except LaunchError as e:
            log.error("%s", e)  # the supervise loop sees it exit and restarts it
            if r.alive() and not self.stopping.is_set():
                await self._stop_stuck(r, f"not ready within {r.spec.ready_timeout_s:.0f}s of restart #{r.restarts}")

    async def stop(self) -> None:
        """Reverse order: SIGTERM (to the graceful pid or the group), SIGKILL after the grace period.
        A quorum's node stopped without a majority of live nodes cannot hand over its partitions (no
        controller is left to answer), so it gets LAST_NODE_GRACE_S instead of waiting the whole
        timeout for one (as kafka_broker.stop_processes does)."""
        self.stopping.set()
        for t in list(self._tasks):
            t.cancel()
        for r in reversed(self.components):
            if r.proc is None:
                continue
            if r.proc.poll() is None:
                r.state = "stopping"
                self.write_state()
                timeout = self.settings.stop_timeout_s
                peers = [c for c in self.components if r.spec.quorum and c.spec.quorum == r.spec.quorum]
                if peers and sum(c.alive() for c in peers) <= len(peers) // 2:
                    timeout = min(timeout, LAST_NODE_GRACE_S)
                await asyncio.to_thread(self._terminate, r, timeout)
            r.state = "stopped"
            self.write_state()
            self.out(f"  {r.spec.name:<10} stopped (exit {r.proc.returncode})")

    def _terminate(self, r: Running, timeout_s: float) -> None:
        """SIGTERM to the graceful pid or the component's group; SIGKILL of the group after
        `timeout_s`; the wrapper exits once the group's output is closed."""
        assert r.proc is not None
        group = r.component_pid()
        target = r.spec.graceful_pid(group) if r.spec.graceful_pid and group else None
        with contextlib.suppress(ProcessLookupError):
            if target:
                os.kill(target, signal.SIGTERM)
            elif group:
                os.killpg(group, signal.SIGTERM)
        try:
            r.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: SIGKILL", r.spec.name, timeout_s)
        # Whatever is left in the group (a JVM's children, Spark's python workers) goes too.
        if r.leader is not None:
            kill_group(r.leader)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGKILL)  # the wrapper (not reaped yet: its pid is still its own)
        with contextlib.suppress(subprocess.TimeoutExpired):
            r.proc.wait(10)


# ---- `up` -------------------------------------------------------------------------------------


def _identity(doc: object) -> ProcessIdentity | None:
    try:
        return ProcessIdentity.model_validate(doc)
    except ValueError:
        return None


def _running_launcher(state_file: Path) -> ProcessIdentity | None:
    """The launcher recorded in `state_file` if it still runs: same pid, create time and command
    line (after a crash the pid may belong to an unrelated process by now)."""
    doc = read_json(state_file)
    if not isinstance(doc, dict):
        return None
    me = _identity(doc.get("launcher"))
    return me if me is not None and me.pid != os.getpid() and me.alive() else None


def _recorded(state_file: Path, role: str) -> dict[str, ProcessIdentity]:
    """Each component's recorded `role` process ("leader": the component, the leader of its process
    group; "wrapper": its log wrapper), whether or not it still runs."""
    doc = read_json(state_file)
    comps = doc.get("components", {}) if isinstance(doc, dict) else {}
    found = {name: _identity(c.get(role)) for name, c in comps.items() if isinstance(c, dict)}
    return {name: ident for name, ident in found.items() if ident is not None}


def _recorded_groups(state_file: Path) -> dict[str, ProcessIdentity]:
    return _recorded(state_file, "leader")


def _orphans(state_file: Path) -> dict[str, ProcessIdentity]:
    """Recorded components that still run (or whose group still has members) without a launcher."""
    return {
        name: leader for name, leader in _recorded_groups(state_file).items() if leader.alive() or group_members(leader)
    }


async def up(settings: LauncherSettings, out: Callable[[str], None] = print) -> int:
    layout = settings.layout
    check_data_dir(settings.data_dir)
    sup = Supervisor(settings, out)
    other = _running_launcher(sup.state_file)
    if other:
        raise LaunchError(
            f"a stack is already running from this data folder (launcher pid {other.pid}): `devicestream down` stops it"
        )
    orphans = _orphans(sup.state_file)
    if orphans:
        listed = ", ".join(f"{name} (group {leader.pid})" for name, leader in orphans.items())
        raise LaunchError(
            f"components of an earlier stack still run without their launcher: {listed}; `devicestream down` stops them"
        )
    sup.state_file.unlink(missing_ok=True)  # a stale record of a stack that is gone
    wanted = settings.component_list()
    cluster: KafkaCluster | None = None
    if not settings.kafka_bootstrap_servers and "kafka" in wanted:
        # --secure: SASL_SSL only, with the CA, keystore and SCRAM user of the data folder
        security = ensure_broker_security(layout.kafka_dir / "security") if settings.kafka_secure else None
        cluster = (
            KafkaCluster.local(
                layout.kafka_dir,
                settings.kafka_port,
                settings.brokers,
                heap=settings.kafka_heap,
                default_partitions=settings.topic_partitions,
                security=security,
            )
            if settings.brokers > 1
            else KafkaCluster.single(
                layout.kafka_dir,
                settings.kafka_port,
                settings.kafka_controller_port,
                heap=settings.kafka_heap,
                default_partitions=settings.topic_partitions,
                security=security,
            )
        )
        for node in cluster.nodes:
            try:
                cluster.check_storage_security(node)
            except BrokerError as e:
                raise LaunchError(str(e)) from None
            check_port_free(node.host, node.port, "DEVICESTREAM_KAFKA_PORT")
            check_port_free(node.host, node.controller_port, "DEVICESTREAM_KAFKA_CONTROLLER_PORT")
    bootstrap = cluster.bootstrap_servers if cluster else settings.require_bootstrap()
    for name, port, setting in (
        ("merger", settings.merger_port, "MERGER_PORT"),
        ("generator", settings.generator_port, "GENERATOR_PORT"),
        ("gateway", settings.gateway_port, "GATEWAY_PORT"),
    ):
        if name in wanted:
            check_port_free(settings.host, port, setting)

    client_security = cluster.client_security if cluster else settings.kafka_security
    sup.env = child_env(settings, bootstrap)
    if cluster is not None and cluster.security is not None:
        sup.env.update(cluster.security.client_env())  # the children's env; never printed
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stopping.set)

    async def make_topic() -> None:
        assert cluster is not None or bootstrap
        rf = cluster.replication_factor if cluster else 1
        if cluster is not None and len(cluster.nodes) > 1:  # replicas need every broker registered
            await wait_until_ready(
                bootstrap, settings.ready_timeout_s, min_brokers=len(cluster.nodes), security=client_security
            )
        try:
            n = await ensure_topic(
                bootstrap,
                settings.topic,
                settings.topic_partitions,
                rf,
                min_insync_replicas=2 if rf >= 3 else None,
                retention_bytes=settings.topic_retention_bytes,
                segment_bytes=settings.topic_segment_bytes,
                security=client_security,
            )
        except (KafkaError, OSError) as e:
            reason = await failure_reason(e, bootstrap, client_security)
            raise BrokerError(f"kafka: cannot create topic {settings.topic} at {bootstrap}: {reason}") from None
        out(f"  {'topic':<10} {'ready':<10} {settings.topic} ({n} partitions, replication {rf})")

    out(f"devicestream: starting in {settings.data_dir.resolve()} (Ctrl-C stops everything)")
    if cluster is not None and cluster.security is not None:
        out(f"  {'kafka':<10} {'secured':<10} {client_security.describe()}")
    async with httpx.AsyncClient() as client:
        specs = build_specs(settings, client, cluster)
        after = {specs[len(cluster.nodes) - 1].name: make_topic} if cluster else {}
        status = 0
        supervisor = asyncio.create_task(sup.supervise())
        try:
            if not cluster:
                out(f"  {'kafka':<10} {'external':<10} {bootstrap} ({client_security.describe()})")
                await make_topic()
            starter = asyncio.create_task(sup.start(specs, after))
            stop_wait = asyncio.create_task(sup.stopping.wait())
            done, _ = await asyncio.wait({starter, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if starter in done:
                starter.result()  # raises LaunchError
                stop_wait.cancel()
                gw = next((r for r in sup.components if r.spec.name == "gateway"), None)
                out("devicestream: all components ready" + (f"; open {gw.spec.url}" if gw else ""))
                await sup.stopping.wait()
            else:
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError, LaunchError):
                    await starter
        except (LaunchError, BrokerError) as e:
            out(f"devicestream: start failed: {e}")
            status = 1
        finally:
            out("devicestream: stopping")
            await sup.stop()
            await supervisor
            with contextlib.suppress(FileNotFoundError):
                sup.state_file.unlink()
    return status


# ---- `status` and `down` from another shell ---------------------------------------------------


def status_lines(settings: LauncherSettings) -> tuple[bool, list[str]]:
    state_file = settings.layout.run_dir / "launcher.json"
    launcher = _running_launcher(state_file)
    if not launcher:
        orphans = _orphans(state_file)
        if orphans:
            return False, [
                "devicestream: the launcher is gone but components still run: "
                + ", ".join(f"{name} (group {leader.pid})" for name, leader in orphans.items())
                + "; `devicestream down` stops them"
            ]
        return False, [f"devicestream: not running (no live launcher for {settings.data_dir.resolve()})"]
    doc = read_json(state_file)
    assert isinstance(doc, dict)
    lines = [f"devicestream: launcher pid {launcher.pid}"]
    for name, c in doc.get("components", {}).items():
        cause = f"  last restart: {c['cause']}" if c.get("cause") else ""
        lines.append(
            f"  {name:<10} {c['state']:<10} pid {c['pid']!s:<8} restarts {c['restarts']:<3} "
            f"{c['url']:<34} log {c['log']}{cause}"
        )
    return True, lines


def running_bootstrap(settings: LauncherSettings) -> str:
    """KAFKA_BOOTSTRAP_SERVERS of the stack running from this data folder, or of the embedded
    broker's default port when none runs."""
    doc = read_json(settings.layout.run_dir / "launcher.json")
    if isinstance(doc, dict) and doc.get("bootstrap"):
        return str(doc["bootstrap"])
    return f"{settings.host}:{settings.kafka_port}"


def down(settings: LauncherSettings, out: Callable[[str], None], timeout_s: float = 120.0) -> int:
    """Stop the stack of this data folder: SIGTERM its launcher (which stops its components in
    order); with the launcher gone (killed), stop the recorded component groups directly, last
    started first. Every recorded process is checked to still be itself before it is signalled."""
    state_file = settings.layout.run_dir / "launcher.json"
    launcher = _running_launcher(state_file)
    if launcher:
        os.kill(launcher.pid, signal.SIGTERM)
        end = time.monotonic() + timeout_s
        while launcher.alive():
            if time.monotonic() > end:
                out(f"devicestream: launcher {launcher.pid} still running after {timeout_s:.0f}s")
                return 1
            time.sleep(0.2)
    orphans = _orphans(state_file)
    for name, leader in reversed(orphans.items()):
        out(f"devicestream: the launcher is gone; stopping {name} (process group {leader.pid})")
        stop_group(leader, settings.stop_timeout_s)
    for wrapper in _recorded(state_file, "wrapper").values():
        stop_wrapper(wrapper, timeout_s=5.0)  # it exits by itself once its component's output closes
    state_file.unlink(missing_ok=True)
    if not launcher and not orphans:
        out(f"devicestream: nothing to stop for {settings.data_dir.resolve()}")
        return 0
    out("devicestream: stopped")
    return 0
