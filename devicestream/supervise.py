"""The launcher's supervisor: it starts the components in order, each once the previous is ready;
restarts one that dies, or that stays unready while what it depends on is ready, with exponential
backoff; stops them in reverse order, gracefully first; and records all of it in launcher.json
(contract/launcher.py) for `devicestream status` and `down` in another shell.

Each component runs under devicestream.logpump (its rotated log); the component leads a process
group of its own, which is what is signalled, after checking it is still the recorded process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from contract.launcher import ComponentRecord, ComponentState, LauncherState
from contract.layout import DataLayout
from devicestream import restarts
from devicestream.kafka_broker import LAST_NODE_GRACE_S, BrokerError
from devicestream.paths import REPO_ROOT
from devicestream.preflight import LaunchError
from devicestream.processes import ProcessIdentity, kill_group, kill_process, log_tail, start_in_own_group
from devicestream.settings import LauncherSettings
from devicestream.specs import ComponentSpec, wrapped_argv

log = logging.getLogger("devicestream.launcher")

#: a step of the start that runs once a component is ready (the topic, once Kafka is)
Step = Callable[[], Awaitable[None]]


@dataclass
class Running:
    spec: ComponentSpec
    proc: subprocess.Popen | None = None
    state: ComponentState = "pending"
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

    def record(self) -> ComponentRecord:
        """Its entry in launcher.json."""
        return ComponentRecord(
            state=self.state,
            pid=self.component_pid(),
            leader=self.leader,
            wrapper=self.wrapper,
            cause=self.cause,
            url=self.spec.url,
            log=str(self.spec.log_file),
            restarts=self.restarts,
            last_exit=self.last_exit,
            started_at=self.started_at,
            ready_at=self.ready_at,
        )

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


class Supervisor:
    def __init__(
        self, settings: LauncherSettings, out: Callable[[str], None] = print, env: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.layout: DataLayout = settings.layout
        self.out = out
        self.components: list[Running] = []
        self.stopping = asyncio.Event()
        #: what every component is told (specs.child_env), on top of the launcher's own environment
        self.env: dict[str, str] = env or {}
        self._tasks: set[asyncio.Task] = set()
        self.identity = ProcessIdentity.of(os.getpid())

    # state file -----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.layout.launcher_state

    def state(self) -> LauncherState:
        """launcher.json's document: this launcher and each component as it is now."""
        return LauncherState(
            pid=os.getpid(),
            launcher=self.identity,
            bootstrap=self.env.get("KAFKA_BOOTSTRAP_SERVERS", ""),
            updated_at=time.time(),
            stopping=self.stopping.is_set(),
            components={r.spec.name: r.record() for r in self.components},
        )

    def write_state(self) -> None:
        self.state().write(self.state_file)

    # the whole run ---------------------------------------------------------------------------

    async def run(self, specs: list[ComponentSpec], topic: Step, topic_after: str | None) -> int:
        """Start `specs` in order (`topic` once `topic_after` is ready; None: before them), then
        supervise them until stopping; stop them all in any case. Returns 1 if the start failed."""
        status = 0
        supervisor = asyncio.create_task(self.supervise())
        try:
            if topic_after is None:
                await topic()
            if await self._start_unless_stopped(specs, {topic_after: topic} if topic_after else {}):
                gw = next((r for r in self.components if r.spec.name == "gateway"), None)
                self.out("devicestream: all components ready" + (f"; open {gw.spec.url}" if gw else ""))
                await self.stopping.wait()
        except (LaunchError, BrokerError) as e:
            self.out(f"devicestream: start failed: {e}")
            status = 1
        finally:
            self.out("devicestream: stopping")
            await self.stop()
            await supervisor
            self.state_file.unlink(missing_ok=True)
        return status

    async def _start_unless_stopped(self, specs: list[ComponentSpec], after: dict[str, Step]) -> bool:
        """Start `specs` unless stopping comes first. Whether they all started (a LaunchError says why not)."""
        starter = asyncio.create_task(self.start(specs, after))
        stop_wait = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({starter, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if starter in done:
            starter.result()  # raises LaunchError
            return True
        starter.cancel()
        with contextlib.suppress(asyncio.CancelledError, LaunchError):
            await starter
        return False

    # lifecycle ------------------------------------------------------------------------------

    def _spawn(self, r: Running) -> None:
        spec = r.spec
        if spec.prestart:
            spec.prestart()
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_file, "ab") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            out.write(f"\n==== {stamp} starting {spec.name}: {spec.argv[:3]}...\n".encode())
        # The wrapper leads a session of its own, starts the component in another (the component's
        # process group) and writes its output to the rotated log; its own errors go to the same file.
        argv = wrapped_argv(spec, self.settings)
        r.proc = start_in_own_group(argv, spec.log_file, env={**os.environ, **self.env, **spec.env}, cwd=REPO_ROOT)
        r.wrapper, r.leader = ProcessIdentity.of(r.proc.pid, cmdline=argv), None
        r.state, r.started_at, r.ready_at, r.unready_since = "starting", time.time(), None, None
        self.write_state()

    async def _await_ready(self, r: Running, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while True:
            if not r.alive():
                assert r.proc is not None
                if restarts.refused(r.proc.returncode):
                    self._refused(r)
                    return
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

    async def start(self, specs: list[ComponentSpec], after: dict[str, Step]) -> None:
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
                    if restarts.refused(r.proc.returncode) and not r.pending_cause:
                        self._refused(r)
                        continue
                    r.last_exit = r.proc.returncode
                    r.cause = r.pending_cause or f"exited with code {r.last_exit}"
                    r.pending_cause = ""
                    if r.leader is not None:
                        kill_group(r.leader)  # whatever of its group outlived it
                    r.state = "restarting"
                    r.restarts += 1
                    healthy_s = time.time() - r.ready_at if r.ready_at else 0.0
                    delay = restarts.restart_delay(backoff.get(r.spec.name), healthy_s)
                    backoff[r.spec.name] = min(delay * 2, self.settings.restart_backoff_max_s)
                    self.write_state()
                    self.out(
                        f"  {r.spec.name} {r.cause}: restarting in {delay:.1f}s "
                        f"(restart #{r.restarts}); last lines of {r.spec.log_file}:\n"
                        + "\n".join(f"    | {line}" for line in log_tail(r.spec.log_file, 8).splitlines())
                    )
                    log.warning("%s %s: restart #%d in %.1fs", r.spec.name, r.cause, r.restarts, delay)
                    self._schedule_restart(r, delay)
            self._retry_refused()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog

    def _refused(self, r: Running) -> None:
        if r.state == "failed":  # seen by both the supervise loop and _await_ready
            return
        line = restarts.mark_refused(r)
        if r.leader is not None:
            kill_group(r.leader)
        self.write_state()
        self.out(line)
        log.error("%s", line.strip())

    def _retry_refused(self) -> None:
        for r in restarts.retry_due(self.components):
            r.state, r.restarts = "restarting", r.restarts + 1
            self.write_state()
            self.out(f"  {r.spec.name}: the cause of its refusal is gone: starting it again")
            self._schedule_restart(r, restarts.FIRST_RESTART_DELAY_S)

    def _schedule_restart(self, r: Running, delay: float) -> None:
        task = asyncio.create_task(self._restart(r, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
                elif not restarts.dependencies_ready(r.spec, self.components):
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
            if r.state == "ready":  # (not refused again)
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
        `timeout_s`; the wrapper exits once the group's output is closed. A component not known yet
        (its wrapper has only just started it) is not waited for: it dies with its wrapper."""
        assert r.proc is not None
        group = r.component_pid()
        target = r.spec.graceful_pid(group) if r.spec.graceful_pid and group else None
        with contextlib.suppress(ProcessLookupError):
            if target:
                os.kill(target, signal.SIGTERM)
            elif group:
                os.killpg(group, signal.SIGTERM)
        try:
            if group:
                r.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: SIGKILL", r.spec.name, timeout_s)
        # Whatever is left in the group (a JVM's children, Spark's python workers) goes too.
        if r.leader is not None:
            kill_group(r.leader)
        # The wrapper (not reaped yet: its pid is still its own); a component it started that we did
        # not know of yet dies with it (logpump: PR_SET_PDEATHSIG).
        with contextlib.suppress(subprocess.TimeoutExpired):
            kill_process(r.proc)
