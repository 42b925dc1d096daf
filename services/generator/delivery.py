"""Handing closed batches to the Kafka producer and tracking their acknowledgement on the run.

A batch's delivery future gets a callback (`delivered`): no message is ever awaited on its own. A
batch whose delivery fails is counted (delivery_errors) and is *in doubt* (the broker may have
written it before the failure): `settle` reads Kafka and counts it delivered if it is there, or
queues its records to be sent again (in_doubt.py): nothing is dropped silently, nothing written
twice. A failure that shows the producer's sequence numbers no longer match the broker's asks for a
new producer (`replace_reason`, read by the engine's monitor). The producer may be replaced
meanwhile: a batch it had not taken yet goes to the new one. Once a stop's deadline has passed, a
batch is given up rather than waited for, so a stop answers in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from contract.kafka import KafkaSecurity
from services.generator.batching import Batch, BatchBuilder, Record
from services.generator.connection import desynchronised, sender_failure
from services.generator.in_doubt import Doubtful, find_written, read_tails
from services.generator.metrics import Metrics
from services.generator.run import LiveRun
from services.generator.settings import GeneratorSettings

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
        #: per partition, where a batch handed over now can land at the earliest (an acknowledged
        #: batch's end; the end offset at connect): a failed batch is looked for from there
        self.confirmed: dict[int, int] = {}
        #: a failure showing the producer must be replaced (its sequence numbers are out of step)
        self.replace_reason: BaseException | None = None

    def note_ends(self, ends: dict[int, int]) -> None:
        """The partitions' end offsets when a producer connected: nothing it sends is below them.
        Kept where known already (a batch of the old producer may be in doubt below the new end)."""
        for part, end in ends.items():
            self.confirmed.setdefault(part, end)

    async def _hand_over(self, run: LiveRun, topic: str, part: int, batch: BatchBuilder) -> asyncio.Future | None:
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

    async def send(self, run: LiveRun, topic: str, batch: Batch) -> None:
        """Hand one closed batch to the producer; track its delivery without awaiting it."""
        recs = batch.records
        n = len(recs)
        # the batch cannot land below what is confirmed now: where a read for it starts if it fails
        since = self.confirmed.get(batch.partition, 0)
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
        fut.add_done_callback(partial(self.delivered, run, seq, sent_at, batch.partition, recs, since))

    def delivered(
        self, run: LiveRun, seq: int, sent_at: float, part: int, recs: list[Record], since: int, fut: asyncio.Future
    ) -> None:
        n = len(recs)
        run.pending.pop(seq, None)
        run.in_flight -= n
        if fut.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = fut.exception()
        if exc is None:
            md = fut.result()
            if md is not None:
                self.confirmed[part] = max(self.confirmed.get(part, 0), md.offset + n)
                if run.ledger is not None:  # injected records go to the ledger with their offsets
                    run.ledger.written(recs, part, md.offset)
            run.acknowledged += n
            self.metrics.acknowledged.inc(n)
            self.metrics.send_latency.observe(time.monotonic() - sent_at)
        else:
            run.delivery_errors += n
            self.metrics.delivery_errors.inc(n)
            if desynchronised(exc) and self.replace_reason is None:
                self.replace_reason = exc
            self._report_error(f"delivery of {n} records failed; unless Kafka has them, they are sent again: {exc!r}")
            log.warning(
                "delivery failed, records in doubt until Kafka is read: %r",
                exc,
                extra={"run": run.id, "partition": part, "records": n},
            )
            run.in_doubt.append(Doubtful(seq, part, recs, since))
        if exc is not None or run.wake_on_delivery:
            run.wake.set()

    async def try_settle(self, run: LiveRun, s: GeneratorSettings, *, connected: bool) -> bool:
        """Settle the run's batches in doubt once nothing of it is in flight and a producer is
        connected (Kafka answers); True when none is left (nothing more is sent before). A stop's
        deadline bounds the reading."""
        if run.in_flight or not connected:
            return False
        limit = s.request_timeout_ms / 1000
        if run.stop_deadline is not None:
            limit = min(limit, max(0.1, run.stop_deadline - time.monotonic()))
        try:
            await asyncio.wait_for(self.settle(run, s.require_bootstrap(), s.topic, s.kafka_security), limit)
        except (KafkaError, OSError, TimeoutError) as e:
            self._report_error(f"cannot read {s.topic} to settle {run.doubtful} records in doubt, retrying: {e!r}")
            log.warning("cannot settle records in doubt yet: %r", e, extra={"run": run.id, "topic": s.topic})
            return False
        return True

    async def settle(self, run: LiveRun, bootstrap: str, topic: str, security: KafkaSecurity) -> None:
        """Decide each in-doubt batch (in_doubt.py): found in Kafka, it is delivered (acknowledged,
        ledger lines at the offsets found); not found, its records are queued to be sent again.
        Call with nothing of the run in flight (so no batch of it can still land)."""
        doubtful = sorted(run.in_doubt, key=lambda d: d.seq)
        parts = sorted({d.partition for d in doubtful})
        since = {p: min(d.since for d in doubtful if d.partition == p) for p in parts}
        tails, ends = await read_tails(bootstrap, topic, since, security)
        found_n = resent_n = 0
        for part in parts:
            mine = [d for d in doubtful if d.partition == part]
            for d, base in zip(mine, find_written([d.records for d in mine], tails[part]), strict=True):
                n = len(d.records)
                if base is None:
                    run.retry.extend(d.records)
                    resent_n += n
                    continue
                found_n += n
                run.acknowledged += n
                self.metrics.acknowledged.inc(n)
                self.metrics.found_written.inc(n)
                if run.ledger is not None:
                    run.ledger.written(d.records, part, base)
            self.confirmed[part] = max(self.confirmed.get(part, 0), ends[part])
        settled = {id(d) for d in doubtful}
        run.in_doubt[:] = [d for d in run.in_doubt if id(d) not in settled]  # any newer one waits its turn
        log.warning(
            "in-doubt records settled: %d found in Kafka already (counted as delivered, not sent again), "
            "%d not there (sent again)",
            found_n,
            resent_n,
            extra={"run": run.id, "topic": topic, "read_from": since, "read_to": ends},
        )
        run.wake.set()
