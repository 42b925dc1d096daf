"""A generator run's task: the hot loop that makes events at the pace the run asks for, hands
them to Kafka in batches (batching.py, delivery.py) and ends the run.

Events are appended to one open batch per partition, and a batch is handed to the producer when
full or older than linger_ms; its delivery is tracked by a callback (delivery.py), never awaited
on its own. Records of a failed batch are settled against Kafka (in_doubt.py) before anything
more is sent: found there, delivered; not found, sent again first. Nothing is dropped silently,
nothing written twice.

The loop binds what it calls per event to locals: it is the generator's throughput
(bench/stage_generator.py measures it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.generator.batching import Batches
from services.generator.events import EventClock, EventEncoder, make_invalid
from services.generator.ledger import prune_ledgers
from services.generator.profiles import ProfileController
from services.generator.run import LiveRun
from services.generator.run_ledger import RunLedger

if TYPE_CHECKING:
    from services.generator.engine import Engine

log = logging.getLogger(__name__)

#: Never wake more often than this while on schedule, nor more often than the linger (a batch waits
#: that long for more events anyway): at 1,000 events/s a 2 ms tick cost the generator ~0.2 of a core
#: in wake-ups, on a machine where Spark needs every cycle it can get.
MIN_TICK_S = 0.002
MAX_CHUNK = 2000  # events made per tick before yielding to the event loop


async def run_to_end(engine: Engine, run: LiveRun) -> None:
    """The run task: produce until the run ends, then settle its state, the offset state and the
    ledger's end line."""
    try:
        await _produce(engine, run)
        run.change_state("stopped" if run.stop_requested else "completed")
    except asyncio.CancelledError:
        run.change_state("stopped")
        raise
    except Exception as e:
        log.exception("run failed", extra={"run": run.id})
        engine.set_error(f"run {run.id} failed: {e!r}")
        run.change_state("failed")
    finally:
        engine.metrics.target_rate.set(0)
        engine.metrics.in_flight.set(run.in_flight)
        if engine.allocator is not None:
            engine.allocator.close()  # the next run continues right after this one
        if run.ledger is not None:  # the ledger's end line
            run.ledger.close(run.state, run.made, run.offset_last)
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


async def _produce(engine: Engine, run: LiveRun) -> None:
    """The hot loop: make events at the pace the run's controller asks for, batch and ship them,
    retry and settle failed batches, and stop (flushing, within the flush timeout) when it ends."""
    s = engine.settings
    p = run.params
    topic = s.topic
    seed = p.seed if p.seed is not None else random.SystemRandom().getrandbits(64)
    rng = random.Random(seed)
    prune_ledgers(s.layout.generator_runs, s.keep_runs - 1)  # (GENERATOR_KEEP_RUNS with this one)
    ledger = run.ledger = RunLedger(  # the run's ledger, and the record maker if it needs one
        run_id=run.id,
        topic=topic,
        runs_dir=s.layout.generator_runs,
        seed=seed,
        params=p,  # as the start asked for it
        started_at=run.started_at,
        first_event_offset=engine.allocator.next if engine.allocator is not None else None,  # the run's own from here
        key_by=s.partition_key,
    )
    rnd = rng.random
    encoder = EventEncoder(s.partition_key)
    clock = EventClock()
    alloc = engine.allocator
    assert alloc is not None
    take_offset = alloc.take
    encode = encoder.encode
    parts = engine.partitions
    invalid_ratio = p.invalid_ratio
    linger_s = s.linger_ms / 1000
    tick_s = max(MIN_TICK_S, linger_s)
    max_in_flight = s.max_in_flight_events
    t0 = time.monotonic()
    t_end = t0 + p.duration_s if p.duration_s is not None else math.inf
    # the schedule starts now that the ledger is ready, on the curve the run follows now
    ctl = run.controller = ProfileController(run.controller.curve, t0, max_lag_s=s.max_lag_s)
    run.samples.append((t0, 0))
    batches = Batches(lambda: engine.batch_producer().create_batch(), parts, lambda: alloc.next)

    async def ship(now: float, everything: bool) -> None:
        for batch in batches.ready(now, linger_s, everything):
            if run.stop_overdue():
                run.abandoned += len(batch.records)
                continue
            await engine.delivery.send(run, topic, batch)

    def making(now: float) -> bool:
        return not run.stop_requested and now < t_end and (p.count is None or run.made < p.count)

    while True:
        now = time.monotonic()
        # batches in doubt are settled (read back from Kafka) before anything more is sent
        if run.in_doubt and not await engine.delivery.try_settle(run, s, connected=engine.producer is not None):
            if not run.stop_overdue():
                run.wake_on_delivery = True  # settling waits for what is in flight
                await _sleep(run, 0.1)
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
            for i in range(n if ledger.maker is None else 0):
                if not i & 31:  # events made within the same few hundred microseconds share a time
                    event_time = clock.now()
                if invalid_ratio and rnd() < invalid_ratio:
                    key, value, _kind = make_invalid(rng, datetime.now(UTC), s.partition_key)
                    run.invalid += 1
                    engine.metrics.invalid.inc()
                    put(key, value, mark=True)  # carries no eventOffset: the header says where we are
                    continue
                off = take_offset(1)
                key, value = encode(rng, event_time, off)
                if run.offset_first is None:
                    run.offset_first = off
                run.offset_last = off
                put(key, value)
            for _ in range(n if ledger.maker is not None else 0):  # fleet / faults / first_index
                key, value, off = ledger.make(take_offset)
                if off is None:
                    run.invalid += 1
                    engine.metrics.invalid.inc()
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
                engine.set_error(
                    f"stop: {run.not_delivered} events not delivered within the {s.flush_timeout_s}s flush "
                    f"timeout ({run.in_flight} handed to the producer and unconfirmed, {run.abandoned} never "
                    f"handed over)"
                )
                log.warning("%s", engine.last_error, extra={"run": run.id})
                break
            run.wake_on_delivery = True
            await _sleep(run, 0.1)  # woken by each delivery
            continue
        at_limit = run.wake_on_delivery = run.in_flight >= max_in_flight
        wait = tick_s if at_limit else ctl.wait_s(now)
        if wait <= 0:
            await asyncio.sleep(0)
            continue
        wait = max(wait, tick_s)
        oldest = batches.oldest()
        if oldest is not None:
            wait = min(wait, max(0.0, oldest + linger_s - now))
        wait = min(wait, max(0.0, t_end - now))
        await _sleep(run, wait)


async def _sleep(run: LiveRun, seconds: float) -> None:
    """Until `seconds` pass or the run is woken (a delivery, a rate change, a stop)."""
    run.wake.clear()
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the wait in a new task each call
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await run.wake.wait()
