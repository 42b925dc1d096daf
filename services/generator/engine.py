"""The generator's engine: its Kafka connection and monitor, one run at a time, and the
commands the API gives it (start, rate, stop, status).

`Engine` owns the AIOKafkaProducer (idempotent, acks=all, compressed batches; connection.py),
connected in the background and replaced when its sender dies, and the run task (run_loop.py).
Retries of a batch in flight are the idempotent producer's (same producer id and sequence
numbers, batches never expired: connection.py), so the broker writes it once.

While Kafka is unreachable (probe fails, or a batch waits longer than degraded_after_s for its
acknowledgement) an active run shows state `degraded` with the error; it resumes by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contract.api import GeneratorStatus, RunParams
from kafka_io.admin import end_offsets
from kafka_io.reachability import failure_reason, tcp_probe
from services.generator.connection import (
    create_topic_if_missing,
    make_producer,
    sender_failure,
)
from services.generator.delivery import Delivery
from services.generator.errors import KafkaUnavailableError, NoActiveRunError, RunActiveError
from services.generator.event_offset_allocator import OffsetAllocator, read_state_next, topic_next_offset
from services.generator.keys import KeyPartitioner
from services.generator.metrics import Metrics
from services.generator.profiles import Curve
from services.generator.run import LiveRun
from services.generator.run_loop import run_to_end
from services.generator.settings import GeneratorSettings
from services.generator.status import run_status

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 0.1
PROBE_EVERY = 10  # monitor ticks between connection probes


class Engine:
    def __init__(self, settings: GeneratorSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.producer: AIOKafkaProducer | None = None
        #: the last producer connected: it builds record batches (a BatchBuilder depends only on the
        #: producer's settings) while a replacement connects
        self._batch_maker: AIOKafkaProducer | None = None
        self.allocator: OffsetAllocator | None = None
        self.partitions = KeyPartitioner(1)  # replaced on connecting, by the topic's partition count
        self.connected = False
        self.last_error: str | None = None
        self.run: LiveRun | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self.delivery = Delivery(metrics, lambda: self.producer, self.set_error)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background: the service is up (healthz) before Kafka is reachable."""
        self._tasks = [
            asyncio.create_task(self._connect_loop(), name="generator-connect"),
            asyncio.create_task(self._monitor_loop(), name="generator-monitor"),
        ]

    async def close(self) -> None:
        run = self.run
        if run is not None and run.active:
            await self.stop_run()
        self._closing = True
        for t in self._tasks:
            t.cancel()
        # Loops also check _closing: on Python 3.11 wait_for can swallow a cancellation.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.producer is not None:
            try:
                await asyncio.wait_for(self.producer.stop(), self.settings.flush_timeout_s)
            except (TimeoutError, KafkaError) as e:
                log.warning("producer did not stop cleanly: %r", e)
            self.producer = None
        if self.allocator is not None:
            self.allocator.close()
            log.info("offset state saved", extra={"next_offset": self.allocator.next})
        self.connected = False

    async def _connect_loop(self) -> None:
        backoff = 0.2
        s = self.settings
        while self.producer is None and not self._closing:
            try:
                bootstrap = s.require_bootstrap()
                await self._connect(bootstrap)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = await failure_reason(e, s.kafka_bootstrap_servers, s.kafka_security)
                error = f"cannot connect to Kafka at {s.kafka_bootstrap_servers or '(unset)'}: {reason}"
                # one warning per distinct cause, not one per retry
                level = logging.DEBUG if error == self.last_error else logging.WARNING
                self.set_error(error)
                log.log(level, "Kafka not ready, retrying in %.1fs: %s", backoff, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _connect(self, bootstrap: str) -> None:
        s = self.settings
        topic = s.topic
        if s.create_topic:
            await create_topic_if_missing(bootstrap, topic, s.topic_partitions, s.kafka_security)
        if self.allocator is None:
            topic_next = None
            if read_state_next(s.layout.generator_state) is None:
                topic_next = await topic_next_offset(bootstrap, topic, security=s.kafka_security)
            self.allocator = OffsetAllocator.open(s.layout.generator_state, topic_next=topic_next, block=s.offset_block)
        # where a read for batches in doubt may start: nothing the new producer sends is below
        self.delivery.note_ends(await end_offsets(bootstrap, topic, s.kafka_security, timeout_s=10))
        producer = make_producer(s, bootstrap)
        try:
            await producer.start()
            parts = await asyncio.wait_for(producer.partitions_for(topic), s.request_timeout_ms / 1000)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            raise
        self.partitions = KeyPartitioner(len(parts))
        self.producer = self._batch_maker = producer
        self.connected = True
        self.metrics.connected.set(1)
        log.info(
            "connected to Kafka",
            extra={"bootstrap": bootstrap, "topic": topic, "partitions": len(parts), "partition_key": s.partition_key},
        )

    async def _monitor_loop(self) -> None:
        """Rate samples, connection probe, degraded state."""
        tick = 0
        probe_error: str | None = None
        while not self._closing:
            now = time.monotonic()
            run = self.run
            if run is not None and run.active:
                run.samples.append((now, run.acknowledged))
                self.metrics.target_rate.set(run.requested_rate(now))  # follows the profile
                self.metrics.rate.set(run.rate_over(1.0, now))
                self.metrics.in_flight.set(run.in_flight)
            if tick % PROBE_EVERY == 0 and self.settings.kafka_bootstrap_servers:
                probe_error = await tcp_probe(self.settings.kafka_bootstrap_servers)
                if self.producer is not None:
                    self.connected = probe_error is None
                    self.metrics.connected.set(1 if self.connected else 0)
                    if probe_error:
                        self.set_error(probe_error)
            if run is not None and run.active:
                self._update_degraded(run, now, probe_error)
            if self.producer is not None and (failure := sender_failure(self.producer) or self.delivery.replace_reason):
                await self._replace_producer(failure)
            tick += 1
            await asyncio.sleep(MONITOR_INTERVAL_S)

    async def _replace_producer(self, failure: BaseException) -> None:
        """Drop a producer whose sender died (or whose sequence numbers are out of step with the
        broker's) and connect a new one; a run in progress waits for it. What the old one had not
        confirmed fails and is settled against Kafka before it is sent again (in_doubt.py)."""
        old, self.producer = self.producer, None
        self.delivery.replace_reason = None
        self.connected = False
        self.metrics.connected.set(0)
        self.metrics.producer_replacements.inc()
        self.set_error(f"the Kafka producer failed for good ({failure!r}): replacing it")
        log.error("%s", self.last_error)
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), 5)
        await self._connect_loop()

    def _update_degraded(self, run: LiveRun, now: float, probe_error: str | None) -> None:
        stalled_s = now - next(iter(run.pending.values())) if run.pending else 0.0
        stalled = stalled_s > self.settings.degraded_after_s
        degraded = probe_error is not None or stalled or self.producer is None
        if degraded and stalled and probe_error is None:
            self.set_error(f"no acknowledgement from Kafka for {stalled_s:.1f}s ({run.in_flight} events in flight)")
        if run.change_state("degraded" if degraded else "running"):
            if degraded:
                log.warning("run degraded: %s", self.last_error, extra={"run": run.id})
            else:
                log.info("run recovered", extra={"run": run.id})

    def set_error(self, message: str) -> None:
        self.last_error = message

    # ---- API ---------------------------------------------------------------------------------

    def start_run(self, params: RunParams) -> LiveRun:
        if self.run is not None and self.run.active:
            raise RunActiveError(self.run.document())
        if self.producer is None or self.allocator is None:
            raise KafkaUnavailableError(f"not connected to Kafka yet: {self.last_error or 'connecting'}")
        run = LiveRun.begin(params, max_lag_s=self.settings.max_lag_s)
        self.run = run
        self.metrics.target_rate.set(run.requested_rate(time.monotonic()))
        run.task = asyncio.create_task(run_to_end(self, run), name=f"generator-run-{run.id}")
        log.info("run started", extra={"run": run.id, "params": params})
        return run

    def set_rate(self, rate: float, curve: Curve | None = None) -> LiveRun:
        run = self.run
        if run is None or not run.active or run.stop_requested:
            raise NoActiveRunError()
        now = time.monotonic()
        if curve is not None:  # a new profile, starting now
            run.controller.set_curve(curve, now)
        else:
            run.controller.set_rate(rate, now)
        rate = run.requested_rate(now)
        self.metrics.target_rate.set(rate)
        run.wake.set()
        log.info("rate changed", extra={"run": run.id, "rate": rate})
        return run

    async def stop_run(self) -> GeneratorStatus:
        run = self.run
        if run is None or not run.active:
            raise NoActiveRunError()
        run.stop_requested = True
        run.stop_deadline = time.monotonic() + self.settings.flush_timeout_s
        run.wake.set()
        if run.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(run.task)
        return self.status()

    def status(self) -> GeneratorStatus:
        """GET /generator/status (status.py)."""
        return run_status(
            self.run,
            topic=self.settings.topic,
            connected=self.connected,
            next_offset=self.allocator.next if self.allocator else None,
            last_error=self.last_error,
        )

    def batch_producer(self) -> AIOKafkaProducer:
        """The producer that builds record batches: the connected one, or the last one while a
        replacement connects (a BatchBuilder depends only on the producer's settings)."""
        producer = self.producer or self._batch_maker
        if producer is None:
            raise KafkaUnavailableError("the Kafka producer is not connected")
        return producer
