"""Delivery bookkeeping without a broker: a failed batch is counted and in doubt (settled against
Kafka before it is sent again: tests/generator/test_frozen_broker_once.py), never dropped."""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from aiokafka.structs import RecordMetadata
from prometheus_client import CollectorRegistry

from contract.api import RunParams
from services.generator.batching import Batch
from services.generator.delivery import Delivery
from services.generator.metrics import Metrics
from services.generator.run import LiveRun


async def test_failed_delivery_is_counted_and_in_doubt_never_dropped() -> None:
    errors: list[str] = []
    delivery = Delivery(Metrics(CollectorRegistry()), lambda: None, errors.append)
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    recs = [(b"CI00100", b"v1"), (b"CI00100", b"v2")]
    run.sent, run.in_flight, run.pending[1] = 2, 2, 0.0

    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(KafkaConnectionError("broker down"))
    delivery.delivered(run, 1, 0.0, 0, recs, 30, failed)
    assert (run.acknowledged, run.delivery_errors, run.in_flight, run.sent) == (0, 2, 0, 2)
    assert [(d.seq, d.partition, d.records, d.since) for d in run.in_doubt] == [(1, 0, recs, 30)]
    assert not run.retry and run.not_delivered == 2  # not sent again before Kafka is read
    assert "broker down" in errors[-1]
    assert not run.pending
    assert delivery.replace_reason is None  # the producer is fine

    # the re-sent batch succeeds: acknowledged once, sent not counted twice; its end is confirmed
    run.in_doubt.clear()
    run.in_flight, run.pending[2] = 2, 0.0
    ok = asyncio.get_running_loop().create_future()
    ok.set_result(RecordMetadata("t", 0, None, 40, -1, 0, 0))
    delivery.delivered(run, 2, 0.0, 0, recs, 40, ok)
    assert (run.acknowledged, run.delivery_errors, run.in_flight, run.sent) == (2, 2, 0, 2)
    assert delivery.confirmed == {0: 42}
    assert delivery.metrics.registry.get_sample_value("generator_events_acknowledged_total") == 2
    assert delivery.metrics.registry.get_sample_value("generator_delivery_errors_total") == 2


async def test_a_sequence_out_of_step_asks_for_a_new_producer() -> None:
    delivery = Delivery(Metrics(CollectorRegistry()), lambda: None, lambda _e: None)
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    run.in_flight, run.pending[1] = 1, 0.0
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(OutOfOrderSequenceNumber())
    delivery.delivered(run, 1, 0.0, 2, [(b"k", b"v")], 0, failed)
    assert isinstance(delivery.replace_reason, OutOfOrderSequenceNumber)
    assert run.doubtful == 1


def test_the_confirmed_offsets_start_at_the_first_connect() -> None:
    delivery = Delivery(Metrics(CollectorRegistry()), lambda: None, lambda _e: None)
    delivery.note_ends({0: 5, 1: 7})
    delivery.note_ends({0: 9, 2: 1})  # a replacement: a batch of the old producer may lie below 9
    assert delivery.confirmed == {0: 5, 1: 7, 2: 1}


class FakeProducer:
    """send_batch hands back the delivery future, as aiokafka's does."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []

    async def send_batch(self, batch: object, topic: str, *, partition: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


def _batch(new: int, again: int) -> Batch:
    recs = [(b"CI00100", b"%d" % i) for i in range(new + again)]
    return Batch(partition=0, builder=object(), opened_at=0.0, records=recs, new_records=new)  # type: ignore[arg-type]


async def test_a_batch_counts_only_its_new_records_as_sent_and_is_acknowledged_by_callback() -> None:
    producer = FakeProducer()
    delivery = Delivery(Metrics(CollectorRegistry()), lambda: producer, lambda _e: None)  # type: ignore[arg-type,return-value]
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    await delivery.send(run, "t", _batch(new=2, again=1))
    assert (run.sent, run.in_flight, len(run.pending)) == (2, 3, 1)
    producer.futures[0].set_result(RecordMetadata("t", 0, None, 0, -1, 0, 0))
    await asyncio.sleep(0)  # done callbacks run on the loop
    assert (run.acknowledged, run.in_flight, len(run.pending)) == (3, 0, 0)
    assert delivery.metrics.registry.get_sample_value("generator_events_sent_total") == 2


async def test_without_a_producer_a_batch_is_given_up_once_the_stop_is_overdue() -> None:
    delivery = Delivery(Metrics(CollectorRegistry()), lambda: None, lambda _e: None)
    run = LiveRun.begin(RunParams(rate=10), max_lag_s=1.0)
    run.stop_requested, run.stop_deadline = True, time.monotonic()
    await delivery.send(run, "t", _batch(new=3, again=0))
    assert (run.abandoned, run.sent, run.in_flight, run.not_delivered) == (3, 0, 0, 3)
