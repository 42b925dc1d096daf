"""The generator's engine: a Kafka connection, one run at a time, delivery tracking.

`Engine` owns the AIOKafkaProducer (idempotent, acks=all, compressed batches; connection.py) and
the run task. Events are appended to one open batch per partition (batching.py), and a batch is
handed to the producer (`send_batch`) when full or older than linger_ms; its delivery future is
tracked with a callback, so no message is ever awaited on its own. A batch whose delivery fails is
counted (delivery_errors) and is in doubt until Kafka is read (in_doubt.py): found there, it is
delivered; not found, its records are sent again. Nothing is dropped silently, nothing written
twice. Retries of a batch in flight are the idempotent producer's (same producer id and sequence
numbers, batches never expired: connection.py), so the broker writes it once.

While Kafka is unreachable (probe fails, or a batch waits longer than degraded_after_s for its
acknowledgement) an active run shows state `degraded` with the error; it resumes by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contract.api import GeneratorStatus
from contract.kafka import failure_reason
from contract.kafka_admin import end_offsets
from services.generator.batching import Batches
from services.generator.connection import (
    create_topic_if_missing,
    make_producer,
    probe,
    sender_failure,
)
from services.generator.delivery import Delivery
from services.generator.errors import GeneratorError, KafkaUnavailableError, NoActiveRunError, RunActiveError
from services.generator.events import EventClock, EventEncoder, make_invalid
from services.generator.extras import RunTools
from services.generator.keys import KeyPartitioner
from services.generator.metrics import Metrics
from services.generator.offsets import OffsetAllocator, read_state_next, topic_next_offset
from services.generator.profiles import Curve, ProfileController
from services.generator.run import Run, RunParams, run_status
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)

MIN_TICK_S = 0.002  # never wake more often than this while on schedule
MAX_CHUNK = 2000  # events made per tick before yielding to the event loop
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
        self.run: Run | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self.delivery = Delivery(metrics, lambda: self.producer, self._set_error)

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
                self._set_error(error)
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
                probe_error = await probe(self.settings.kafka_bootstrap_servers)
                if self.producer is not None:
                    self.connected = probe_error is None
                    self.metrics.connected.set(1 if self.connected else 0)
                    if probe_error:
                        self._set_error(probe_error)
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
        self._set_error(f"the Kafka producer failed for good ({failure!r}): replacing it")
        log.error("%s", self.last_error)
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), 5)
        await self._connect_loop()

    def _update_degraded(self, run: Run, now: float, probe_error: str | None) -> None:
        stalled_s = now - next(iter(run.pending.values())) if run.pending else 0.0
        stalled = stalled_s > self.settings.degraded_after_s
        degraded = probe_error is not None or stalled or self.producer is None
        if degraded and stalled and probe_error is None:
            self._set_error(f"no acknowledgement from Kafka for {stalled_s:.1f}s ({run.in_flight} events in flight)")
        if run.change_state("degraded" if degraded else "running"):
            if degraded:
                log.warning("run degraded: %s", self.last_error, extra={"run": run.id})
            else:
                log.info("run recovered", extra={"run": run.id})

    def _set_error(self, message: str) -> None:
        self.last_error = message

    # ---- API ---------------------------------------------------------------------------------

    def start_run(self, params: RunParams) -> Run:
        if self.run is not None and self.run.active:
            raise RunActiveError(self.run.id, self.run.state)
        if self.producer is None or self.allocator is None:
            raise KafkaUnavailableError(f"not connected to Kafka yet: {self.last_error or 'connecting'}")
        if params.rate > self.settings.max_rate:
            raise GeneratorError(f"rate {params.rate} is over the maximum {self.settings.max_rate}")
        run = Run.begin(params, max_lag_s=self.settings.max_lag_s)
        self.run = run
        self.metrics.target_rate.set(run.requested_rate(time.monotonic()))
        run.task = asyncio.create_task(self._run_guarded(run), name=f"generator-run-{run.id}")
        log.info("run started", extra={"run": run.id, "params": params})
        return run

    def set_rate(self, rate: float, curve: Curve | None = None) -> Run:
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
        """GET /generator/status (contract.api.GeneratorStatus), built here and nowhere else."""
        return run_status(
            self.run,
            topic=self.settings.topic,
            connected=self.connected,
            next_offset=self.allocator.next if self.allocator else None,
            last_error=self.last_error,
        )

    # ---- the run -----------------------------------------------------------------------------

    async def _run_guarded(self, run: Run) -> None:
        try:
            await self._run(run)
            run.change_state("stopped" if run.stop_requested else "completed")
        except asyncio.CancelledError:
            run.change_state("stopped")
            raise
        except Exception as e:
            log.exception("run failed", extra={"run": run.id})
            self._set_error(f"run {run.id} failed: {e!r}")
            run.change_state("failed")
        finally:
            self.metrics.target_rate.set(0)
            self.metrics.in_flight.set(run.in_flight)
            if self.allocator is not None:
                self.allocator.close()  # the next run continues right after this one
            if run.tools is not None:  # the ledger's end line
                run.tools.close(run.state, run.made, run.offset_last)
            log.info(
                "run ended",
                extra={
                    "run": run.id,
                    "state": run.state,
                    "sent": run.sent,
                    "acknowledged": run.acknowledged,
                    "offset_first": run.offset_first,
                    "offset_last": run.offset_last,
                },
            )

    async def _run(self, run: Run) -> None:
        s = self.settings
        p = run.params
        topic = s.topic
        seed = p.seed if p.seed is not None else random.SystemRandom().getrandbits(64)
        rng = random.Random(seed)
        tools = run.tools = RunTools(  # the run's ledger, and the record maker if it needs one
            run_id=run.id,
            topic=topic,
            runs_dir=s.layout.generator_runs,
            seed=seed,
            invalid_ratio=p.invalid_ratio,
            extras=p.extras,
            params=run.public_params(p.rate),  # the rate asked for at the start
            started_at=run.started_at,
            first_event_offset=self.allocator.next if self.allocator is not None else None,  # the run's own from here
            key_by=s.partition_key,
        )
        rnd = rng.random
        encoder = EventEncoder(s.partition_key)
        clock = EventClock()
        alloc = self.allocator
        assert alloc is not None
        take_offset = alloc.take
        encode = encoder.encode
        parts = self.partitions
        invalid_ratio = p.invalid_ratio
        linger_s = s.linger_ms / 1000
        max_in_flight = s.max_in_flight_events
        t0 = time.monotonic()
        t_end = t0 + p.duration_s if p.duration_s is not None else math.inf
        # the schedule starts now that the tools are ready, on the curve the run follows now
        ctl = run.controller = ProfileController(run.controller.curve, t0, max_lag_s=s.max_lag_s)
        run.samples.append((t0, 0))
        batches = Batches(lambda: self._producer().create_batch(), parts, lambda: alloc.next)

        async def ship(now: float, everything: bool) -> None:
            for batch in batches.ready(now, linger_s, everything):
                if run.stop_overdue():
                    run.abandoned += len(batch.records)
                    continue
                await self.delivery.send(run, topic, batch)

        def making(now: float) -> bool:
            return not run.stop_requested and now < t_end and (p.count is None or run.made < p.count)

        while True:
            now = time.monotonic()
            # batches in doubt are settled (read back from Kafka) before anything more is sent
            if run.in_doubt and not await self.delivery.try_settle(run, s, connected=self.producer is not None):
                if not run.stop_overdue():
                    await self._sleep(run, 0.1)
                    continue
                run.abandoned += run.doubtful
                run.in_doubt.clear()
            while run.retry:  # records whose delivery failed (and are not in Kafka) go first
                batches.put(*run.retry.popleft(), is_retry=True)
            if making(now):
                limit = min(MAX_CHUNK, max(max_in_flight - run.in_flight, 0))
                if p.count is not None:
                    limit = min(limit, p.count - run.made)
                n = ctl.take(min(now, t_end - 1e-9), limit)
                put = batches.put
                event_time = ""
                for i in range(n if tools.maker is None else 0):
                    if not i & 31:  # events made within the same few hundred microseconds share a time
                        event_time = clock.now()
                    if invalid_ratio and rnd() < invalid_ratio:
                        key, value, _kind = make_invalid(rng, datetime.now(UTC), s.partition_key)
                        run.invalid += 1
                        self.metrics.invalid.inc()
                        put(key, value, mark=True)  # carries no eventOffset: the header says where we are
                        continue
                    off = take_offset(1)
                    key, value = encode(rng, event_time, off)
                    if run.offset_first is None:
                        run.offset_first = off
                    run.offset_last = off
                    put(key, value)
                for _ in range(n if tools.maker is not None else 0):  # fleet / faults / first_index
                    key, value, off = tools.make(take_offset)
                    if off is None:
                        run.invalid += 1
                        self.metrics.invalid.inc()
                    else:
                        if run.offset_first is None:
                            run.offset_first = off
                        run.offset_last = off
                    put(key, value)
                run.made += n
            now = time.monotonic()
            still_making = making(now)
            await ship(now, everything=not still_making)
            if not still_making:
                if run.in_flight == 0 and not run.retry and not run.in_doubt and not batches.records():
                    break
                if run.stop_overdue():
                    run.abandoned += batches.discard() + len(run.retry) + run.doubtful
                    run.retry.clear()
                    run.in_doubt.clear()
                    self._set_error(
                        f"stop: {run.not_delivered} events not delivered within the {s.flush_timeout_s}s flush "
                        f"timeout ({run.in_flight} handed to the producer and unconfirmed, {run.abandoned} never "
                        f"handed over)"
                    )
                    log.warning("%s", self.last_error, extra={"run": run.id})
                    break
                await self._sleep(run, 0.1)  # woken by each delivery
                continue
            wait = ctl.wait_s(now) if run.in_flight < max_in_flight else MIN_TICK_S
            if wait <= 0:
                await asyncio.sleep(0)
                continue
            wait = max(wait, MIN_TICK_S)
            oldest = batches.oldest()
            if oldest is not None:
                wait = min(wait, max(0.0, oldest + linger_s - now))
            wait = min(wait, max(0.0, t_end - now))
            await self._sleep(run, wait)

    def _producer(self) -> AIOKafkaProducer:
        producer = self.producer or self._batch_maker
        if producer is None:
            raise KafkaUnavailableError("the Kafka producer is not connected")
        return producer

    async def _sleep(self, run: Run, seconds: float) -> None:
        run.wake.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.wake.wait(), seconds)
