"""The generator's engine: a Kafka connection, one run at a time, delivery tracking.

`Generator` owns the AIOKafkaProducer (idempotent, acks=all, compressed batches) and the run task.
Events are appended to one open batch per partition (`create_batch`), and a batch is handed to
the producer (`send_batch`) when full or older than linger_ms; its delivery future is tracked with
a callback, so no message is ever awaited on its own. A batch whose delivery fails is counted
(delivery_errors) and its records are queued to be sent again: nothing is dropped silently. Retries
of a batch in flight are the idempotent producer's (same producer id and sequence numbers), so the
broker writes it once.

While Kafka is unreachable (probe fails, or a batch waits longer than degraded_after_s for its
acknowledgement) an active run shows state `degraded` with the error; it resumes by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contract.events import CUSTOMER_IDS
from contract.kafka import KafkaSecurity, aiokafka_options, failure_reason
from services.generator.errors import (
    GeneratorError,
    KafkaUnavailableError,
    NoActiveRunError,
    RunActiveError,
)
from services.generator.events import EventClock, EventEncoder, make_invalid
from services.generator.extras import RunExtras, RunTools, make_controller  # profiles, fleet, faults
from services.generator.offsets import (
    OffsetAllocator,
    make_admin,
    next_offset_header,
    read_state_next,
    topic_next_offset,
)
from services.generator.profiles import Curve, ProfileController
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)

ACTIVE_STATES = frozenset({"running", "degraded"})
MIN_TICK_S = 0.002  # never wake more often than this while on schedule
MAX_CHUNK = 2000  # events made per tick before yielding to the event loop
MONITOR_INTERVAL_S = 0.1
STOP_POLL_S = 0.1  # how often a send waiting on the producer looks at the stop deadline
PROBE_EVERY = 10  # monitor ticks between connection probes


@dataclass(frozen=True)
class RunParams:
    rate: float
    count: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    invalid_ratio: float = 0.0
    extras: RunExtras | None = None  # profile, fleet, faults, first_index


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.sent = Counter("generator_events_sent", "Records handed to the Kafka producer.", registry=registry)
        self.acknowledged = Counter(
            "generator_events_acknowledged", "Records acknowledged by Kafka (acks=all).", registry=registry
        )
        self.invalid = Counter("generator_events_invalid", "Deliberately malformed records sent.", registry=registry)
        self.delivery_errors = Counter(
            "generator_delivery_errors",
            "Records whose delivery attempt failed (they are sent again).",
            registry=registry,
        )
        self.send_latency = Histogram(
            "generator_send_latency_seconds",
            "From handing a batch to the producer to its acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.rate = Gauge(
            "generator_rate_events_per_second", "Acknowledged events/s over the last 1 s.", registry=registry
        )
        self.target_rate = Gauge("generator_target_rate_events_per_second", "The active run's rate.", registry=registry)
        self.in_flight = Gauge(
            "generator_events_in_flight", "Records sent and not yet acknowledged.", registry=registry
        )
        self.connected = Gauge("generator_kafka_connected", "1 when Kafka is reachable.", registry=registry)


@dataclass
class Run:
    id: str
    params: RunParams
    started_at: float
    state: str = "running"
    ended_at: float | None = None
    sent: int = 0
    acknowledged: int = 0
    invalid: int = 0
    delivery_errors: int = 0
    offset_first: int | None = None
    offset_last: int | None = None
    made: int = 0
    in_flight: int = 0
    degraded: bool = False
    stop_requested: bool = False
    stop_deadline: float | None = None
    #: events made but never handed to the producer: the stop deadline passed first
    abandoned: int = 0
    rate: float = 0.0
    controller: ProfileController | None = None
    tools: RunTools | None = None  # ledger and record maker
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: deque = field(default_factory=deque)  # (key, value) to send again
    pending: OrderedDict = field(default_factory=OrderedDict)  # batch seq -> monotonic send time
    samples: deque = field(default_factory=lambda: deque(maxlen=150))  # (monotonic, acknowledged)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def public(self) -> dict[str, Any]:
        p = self.params
        return {
            "id": self.id,
            "state": self.state,
            "params": {
                "rate": self.rate,
                "count": p.count,
                "duration_s": p.duration_s,
                "seed": p.seed,
                "invalid_ratio": p.invalid_ratio,
                **(p.extras.public() if p.extras is not None else {}),
            },
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    @property
    def not_delivered(self) -> int:
        """Events made and not acknowledged: never handed over, or handed over and unconfirmed
        (those may still be written by the producer once Kafka answers)."""
        return self.abandoned + self.in_flight + len(self.retry)

    def rate_over(self, window_s: float, now: float) -> float:
        ref = None
        for t, n in self.samples:
            if t >= now - window_s - 1e-9:
                ref = (t, n)
                break
        if ref is None or now - ref[0] <= 0:
            return 0.0
        return (self.acknowledged - ref[1]) / (now - ref[0])


def _producer_kwargs(settings: GeneratorSettings, bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "client_id": "devicestream-generator",
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_size,
        "max_request_size": max(settings.max_batch_size * 4, 1_048_576),
        "request_timeout_ms": settings.request_timeout_ms,
        "retry_backoff_ms": settings.retry_backoff_ms,
        **aiokafka_options(settings.kafka_security),
    }


def make_producer(settings: GeneratorSettings, bootstrap: str) -> AIOKafkaProducer:
    """The one place the generator's Kafka producer is built."""
    return AIOKafkaProducer(**_producer_kwargs(settings, bootstrap))


def sender_failure(producer: AIOKafkaProducer) -> BaseException | None:
    """Why the producer's sender task ended, None while it runs. aiokafka ends it for good on a
    fatal error (OutOfOrderSequenceNumber when a batch expired while its partition had no leader,
    ProducerFenced): every later send then waits forever, so the producer must be replaced."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if task is None or not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError("the producer's sender task was cancelled")
    return task.exception() or KafkaError("the producer's sender task ended")


def partition_of_keys(n_partitions: int) -> dict[bytes, int]:
    """Partition of each customer key, as Kafka's default partitioner (murmur2) places it."""
    return {c.encode(): (murmur2(c.encode()) & 0x7FFFFFFF) % n_partitions for c in CUSTOMER_IDS}


async def probe(bootstrap: str, timeout_s: float = 1.0) -> str | None:
    """None when a TCP connection to a bootstrap server succeeds, else the error."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError) as e:
            errors.append(f"{server}: {e!r}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return "Kafka unreachable: " + "; ".join(errors)


class Generator:
    def __init__(self, settings: GeneratorSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.producer: AIOKafkaProducer | None = None
        #: the last producer connected: it builds record batches (a BatchBuilder depends only on the
        #: producer's settings) while a replacement connects
        self._batch_maker: AIOKafkaProducer | None = None
        self.allocator: OffsetAllocator | None = None
        self.partitions: dict[bytes, int] = {}
        self.connected = False
        self.last_error: str | None = None
        self.run: Run | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._batch_seq = 0

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
            await _ensure_topic(bootstrap, topic, s.topic_partitions, s.kafka_security)
        if self.allocator is None:
            topic_next = None
            if read_state_next(s.layout.generator_state) is None:
                topic_next = await topic_next_offset(bootstrap, topic, security=s.kafka_security)
            self.allocator = OffsetAllocator.open(s.layout.generator_state, topic_next=topic_next, block=s.offset_block)
        producer = make_producer(s, bootstrap)
        try:
            await producer.start()
            parts = await asyncio.wait_for(producer.partitions_for(topic), s.request_timeout_ms / 1000)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            raise
        self.partitions = partition_of_keys(len(parts))
        self.producer = self._batch_maker = producer
        self.connected = True
        self.metrics.connected.set(1)
        log.info("connected to Kafka", extra={"bootstrap": bootstrap, "topic": topic, "partitions": len(parts)})

    async def _monitor_loop(self) -> None:
        """Rate samples, connection probe, degraded state."""
        tick = 0
        probe_error: str | None = None
        while not self._closing:
            now = time.monotonic()
            run = self.run
            if run is not None and run.active:
                run.samples.append((now, run.acknowledged))
                if run.controller is not None:  # the requested rate follows the profile
                    run.rate = run.controller.rate_now(now)
                    self.metrics.target_rate.set(run.rate)
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
            if self.producer is not None and (failure := sender_failure(self.producer)) is not None:
                await self._replace_producer(failure)
            tick += 1
            await asyncio.sleep(MONITOR_INTERVAL_S)

    async def _replace_producer(self, failure: BaseException) -> None:
        """Drop a producer whose sender died and connect a new one (a run in progress waits for it;
        what the old one had not delivered fails over to the run's retry queue)."""
        old, self.producer = self.producer, None
        self.connected = False
        self.metrics.connected.set(0)
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
        if degraded != run.degraded:
            run.degraded = degraded
            if run.state in ACTIVE_STATES:
                run.state = "degraded" if degraded else "running"
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
        run = Run(id=uuid.uuid4().hex[:12], params=params, started_at=time.time(), rate=params.rate)
        self.run = run
        self.metrics.target_rate.set(params.rate)
        run.task = asyncio.create_task(self._run_guarded(run), name=f"generator-run-{run.id}")
        log.info("run started", extra={"run": run.id, "params": params})
        return run

    def set_rate(self, rate: float, curve: Curve | None = None) -> Run:
        run = self.run
        if run is None or not run.active or run.stop_requested:
            raise NoActiveRunError()
        if run.controller is not None:
            if curve is not None:  # a new profile, starting now
                run.controller.set_curve(curve, time.monotonic())
                rate = run.controller.rate_now(time.monotonic())
            else:
                run.controller.set_rate(rate, time.monotonic())
        run.rate = rate
        self.metrics.target_rate.set(rate)
        run.wake.set()
        log.info("rate changed", extra={"run": run.id, "rate": rate})
        return run

    async def stop_run(self) -> dict[str, Any]:
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

    def status(self) -> dict[str, Any]:
        run = self.run
        now = time.monotonic()
        base: dict[str, Any] = {
            "state": run.state if run is not None else "idle",
            "run": run.public() if run is not None else None,
            "topic": self.settings.topic,
            "connected": self.connected,
            "sent": 0,
            "acknowledged": 0,
            "invalid": 0,
            "delivery_errors": 0,
            "in_flight": 0,
            "rate_1s": 0.0,
            "rate_10s": 0.0,
            "rate_requested": 0.0,  # what the run (its profile) asks for now; rate_1s is achieved
            "offset_first": None,
            "offset_last": None,
            "not_delivered": 0,
            "next_offset": self.allocator.next if self.allocator else None,
            "last_error": self.last_error,
        }
        if run is not None:
            active = run.active
            base.update(
                sent=run.sent,
                acknowledged=run.acknowledged,
                invalid=run.invalid,
                delivery_errors=run.delivery_errors,
                in_flight=run.in_flight,
                rate_1s=round(run.rate_over(1.0, now), 3) if active else 0.0,
                rate_10s=round(run.rate_over(10.0, now), 3) if active else 0.0,
                rate_requested=round(run.controller.rate_now(now), 3) if active and run.controller else 0.0,
                offset_first=run.offset_first,
                offset_last=run.offset_last,
                not_delivered=run.not_delivered if not active else 0,
            )
        return base

    # ---- the run -----------------------------------------------------------------------------

    async def _run_guarded(self, run: Run) -> None:
        try:
            await self._run(run)
        except asyncio.CancelledError:
            run.state = "stopped"
            raise
        except Exception as e:
            log.exception("run failed", extra={"run": run.id})
            self._set_error(f"run {run.id} failed: {e!r}")
            run.state = "failed"
        finally:
            run.ended_at = time.time()
            self.metrics.target_rate.set(0)
            self.metrics.in_flight.set(run.in_flight)
            if self.allocator is not None:
                self.allocator.close()  # the next run continues right after this one
            if run.tools is not None:  # the ledger's end line
                run.tools.close(run.state, run.made)
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
            params=run.public()["params"],
            started_at=run.started_at,
        )
        rnd = rng.random
        encoder = EventEncoder()
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
        ctl = make_controller(p.rate, p.extras, t0, s.max_lag_s)  # follows the profile's curve
        run.controller = ctl
        run.samples.append((t0, 0))
        batches = _Batches(self._producer, parts, lambda: alloc.next)

        async def ship(now: float, everything: bool) -> None:
            for part, batch, recs, fresh in batches.ready(now, linger_s, everything):
                if self._stop_overdue(run):
                    run.abandoned += len(recs)
                    continue
                await self._send(run, topic, part, batch, recs, fresh)

        def making(now: float) -> bool:
            return not run.stop_requested and now < t_end and (p.count is None or run.made < p.count)

        while True:
            now = time.monotonic()
            while run.retry:  # records whose delivery failed go first
                batches.put(*run.retry.popleft(), fresh=False, mark=True)
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
                        key, value, _kind = make_invalid(rng, datetime.now(UTC))
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
                if run.in_flight == 0 and not run.retry and not batches.records():
                    break
                if self._stop_overdue(run):
                    run.abandoned += batches.discard() + len(run.retry)
                    run.retry.clear()
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

        run.state = "stopped" if run.stop_requested else "completed"

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

    @staticmethod
    def _stop_overdue(run: Run) -> bool:
        return run.stop_requested and time.monotonic() >= (run.stop_deadline or math.inf)

    async def _hand_over(self, run: Run, topic: str, part: int, batch: Any) -> asyncio.Future | None:
        """producer.send_batch, which waits while the partition's previous batch is unacknowledged
        (up to request_timeout_ms, again and again while the broker is away): given up, returning
        None, once a stop's deadline has passed, so a stop answers in time whatever Kafka does."""
        while True:
            producer = self.producer
            if producer is None:  # being replaced or reconnected: wait for the new one
                if self._stop_overdue(run):
                    return None
                await asyncio.sleep(STOP_POLL_S)
                continue
            task = asyncio.ensure_future(producer.send_batch(batch, topic, partition=part))
            while not task.done():
                await asyncio.wait({task}, timeout=STOP_POLL_S)
                if not task.done() and (self._stop_overdue(run) or self.producer is not producer):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, KafkaError):
                        await task
                    if self._stop_overdue(run):
                        return None
            if task.cancelled():
                continue  # the producer was replaced before it took the batch: hand it to the new one
            try:
                return task.result()
            except KafkaTimeoutError:
                # The partition's previous batch is still waiting (broker away): keep waiting.
                self._set_error(f"Kafka did not take a batch for {topic}[{part}] in time; retrying")
                if self._stop_overdue(run):
                    return None
            except KafkaError:
                if sender_failure(producer) is None:
                    raise
                # The producer failed for good: the monitor replaces it; the new one takes the batch.
                if self._stop_overdue(run):
                    return None
                await asyncio.sleep(STOP_POLL_S)

    async def _send(self, run: Run, topic: str, part: int, batch: Any, recs: list, fresh: int) -> None:
        """Hand one closed batch to the producer; track its delivery without awaiting it. `fresh`
        of its records are sent for the first time (the others are re-sent after a failure)."""
        n = len(recs)
        fut = await self._hand_over(run, topic, part, batch)
        if fut is None:
            run.abandoned += n
            return
        self._batch_seq += 1
        seq = self._batch_seq
        sent_at = time.monotonic()
        run.pending[seq] = sent_at
        run.sent += fresh
        run.in_flight += n
        self.metrics.sent.inc(fresh)
        fut.add_done_callback(partial(self._delivered, run, seq, sent_at, recs))
        if run.tools is not None:  # injected records go to the ledger with their offsets
            fut.add_done_callback(partial(run.tools.ledger.delivered, recs))

    def _delivered(self, run: Run, seq: int, sent_at: float, recs: list, fut: asyncio.Future) -> None:
        n = len(recs)
        run.pending.pop(seq, None)
        run.in_flight -= n
        if fut.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = fut.exception()
        if exc is None:
            run.acknowledged += n
            self.metrics.acknowledged.inc(n)
            self.metrics.send_latency.observe(time.monotonic() - sent_at)
        else:
            run.delivery_errors += n
            self.metrics.delivery_errors.inc(n)
            self._set_error(f"delivery of {n} records failed, sending them again: {exc!r}")
            log.warning("delivery failed, records queued again: %r", exc, extra={"run": run.id, "records": n})
            run.retry.extend(recs)
        run.wake.set()


class _Batches:
    """One open BatchBuilder per partition; full or lingered batches come out of `ready`.

    A record whose value does not tell the newest eventOffset handed out (a malformed record, or
    one sent again after a failed delivery: its eventOffset is older) is `mark`ed with the
    NEXT_OFFSET_HEADER, so the newest record of every partition always tells where the offsets are
    (see offsets.topic_next_offset)."""

    def __init__(self, producer: Any, partitions: dict[bytes, int], next_offset: Callable[[], int]) -> None:
        self._producer = producer
        self._parts = partitions
        self._next_offset = next_offset
        self._open: dict[int, list] = {}  # part -> [builder, records, fresh, opened_at]
        self._full: list[tuple[int, Any, list, int]] = []

    def _new(self, part: int) -> list:
        entry = [self._producer().create_batch(), [], 0, time.monotonic()]
        self._open[part] = entry
        return entry

    def put(self, key: bytes, value: bytes, fresh: bool = True, mark: bool = False) -> None:
        part = self._parts[key]
        entry = self._open.get(part) or self._new(part)
        headers = [next_offset_header(self._next_offset())] if mark else []
        if entry[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
            self._full.append((part, entry[0], entry[1], entry[2]))
            entry = self._new(part)
            if entry[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise GeneratorError(f"a record of {len(value)} bytes does not fit in an empty batch")
        entry[1].append((key, value))
        if fresh:
            entry[2] += 1

    def records(self) -> int:
        """Records in batches not handed to the producer yet."""
        return sum(len(e[1]) for e in self._open.values()) + sum(len(f[2]) for f in self._full)

    def discard(self) -> int:
        """Drop every batch not handed over; returns how many records they held."""
        n = self.records()
        self._open.clear()
        self._full.clear()
        return n

    def oldest(self) -> float | None:
        return min((e[3] for e in self._open.values()), default=None)

    def ready(self, now: float, linger_s: float, everything: bool) -> list[tuple[int, Any, list, int]]:
        out, self._full = self._full, []
        for part in [q for q, e in self._open.items() if everything or now - e[3] >= linger_s]:
            builder, recs, fresh, _ = self._open.pop(part)
            builder.close()
            out.append((part, builder, recs, fresh))
        return out


async def _ensure_topic(bootstrap: str, topic: str, partitions: int, security: KafkaSecurity) -> None:
    admin = make_admin(bootstrap, security, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        if topic in await admin.list_topics():
            return
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
            log.info("created topic", extra={"topic": topic, "partitions": partitions})
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()
