"""Handing closed batches to the Kafka producer and tracking their acknowledgement on the run.

A batch's delivery future gets a callback (`delivered`): no message is ever awaited on its own. A
batch whose delivery fails is counted (delivery_errors) and its records go to the run's retry queue
(they are sent again): nothing is dropped silently. The producer may be replaced meanwhile (see the
engine's monitor): a batch it had not taken yet goes to the new one. Once a stop's deadline has
passed, a batch is given up rather than waited for, so a stop answers in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from services.generator.batching import Batch, BatchBuilder, Record
from services.generator.connection import sender_failure
from services.generator.metrics import Metrics
from services.generator.run import Run

log = logging.getLogger(__name__)

STOP_POLL_S = 0.1  # how often a send waiting on the producer looks at the stop deadline


class Delivery:
    def __init__(
        self,
        metrics: Metrics,
        current_producer: Callable[[], AIOKafkaProducer | None],
        report_error: Callable[[str], None],
    ) -> None:
        """`current_producer`: the connected producer now, None while it is replaced or reconnected;
        `report_error`: the engine's last_error."""
        self.metrics = metrics
        self._current = current_producer
        self._report_error = report_error
        self._seq = 0  # batches handed over

    async def _hand_over(self, run: Run, topic: str, part: int, batch: BatchBuilder) -> asyncio.Future | None:
        """producer.send_batch, which waits while the partition's previous batch is unacknowledged
        (up to request_timeout_ms, again and again while the broker is away): given up, returning
        None, once a stop's deadline has passed, so a stop answers in time whatever Kafka does."""
        while True:
            producer = self._current()
            if producer is None:  # being replaced or reconnected: wait for the new one
                if run.stop_overdue():
                    return None
                await asyncio.sleep(STOP_POLL_S)
                continue
            task = asyncio.ensure_future(producer.send_batch(batch, topic, partition=part))
            while not task.done():
                await asyncio.wait({task}, timeout=STOP_POLL_S)
                if not task.done() and (run.stop_overdue() or self._current() is not producer):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, KafkaError):
                        await task
                    if run.stop_overdue():
                        return None
            if task.cancelled():
                continue  # the producer was replaced before it took the batch: hand it to the new one
            try:
                return task.result()
            except KafkaTimeoutError:
                # The partition's previous batch is still waiting (broker away): keep waiting.
                self._report_error(f"Kafka did not take a batch for {topic}[{part}] in time; retrying")
                if run.stop_overdue():
                    return None
            except KafkaError:
                if sender_failure(producer) is None:
                    raise
                # The producer failed for good: the monitor replaces it; the new one takes the batch.
                if run.stop_overdue():
                    return None
                await asyncio.sleep(STOP_POLL_S)

    async def send(self, run: Run, topic: str, batch: Batch) -> None:
        """Hand one closed batch to the producer; track its delivery without awaiting it."""
        recs = batch.records
        n = len(recs)
        fut = await self._hand_over(run, topic, batch.partition, batch.builder)
        if fut is None:
            run.abandoned += n
            return
        self._seq += 1
        seq = self._seq
        sent_at = time.monotonic()
        run.pending[seq] = sent_at
        run.sent += batch.new_records  # records sent again were counted when first sent
        run.in_flight += n
        self.metrics.sent.inc(batch.new_records)
        fut.add_done_callback(partial(self.delivered, run, seq, sent_at, recs))
        if run.tools is not None:  # injected records go to the ledger with their offsets
            fut.add_done_callback(partial(run.tools.ledger.delivered, recs))

    def delivered(self, run: Run, seq: int, sent_at: float, recs: list[Record], fut: asyncio.Future) -> None:
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
            self._report_error(f"delivery of {n} records failed, sending them again: {exc!r}")
            log.warning("delivery failed, records queued again: %r", exc, extra={"run": run.id, "records": n})
            run.retry.extend(recs)
        run.wake.set()
