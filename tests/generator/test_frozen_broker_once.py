"""The generator never writes an event twice (real broker): the broker frozen (SIGSTOP) past the
producer's request timeout holds a batch it will write once resumed; the producer is replaced
meanwhile (its sender dies: fault injection into the real client, as aiokafka ends it on a fatal
error), so every batch it had not confirmed fails. Once the broker is back, the batch it wrote is
found in Kafka and counted as delivered, not sent again: each eventOffset is in the topic once, and
the run's deliberate re-sends (its ledger's `resend` faults) are still there, under new offsets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from contract.generator_options import FaultOptions
from contract.ledger import ledger_path, read_ledger
from devicestream.verify import compare, scan_topic
from services.generator.connection import sender_failure
from services.generator.engine import Engine
from services.generator.extras import RunExtras
from services.generator.metrics import Metrics
from services.generator.run import RunParams
from services.generator.settings import GeneratorSettings
from tests.conftest import Broker
from tests.generator.conftest import read_topic
from tests.generator.test_engine_replaces_producer import _kill_the_sender_on_its_next_request

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_MS = 2000
COUNT = 6000


async def _until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def frozen_broker_run(bootstrap: str, broker_pid: int, topic: str, data: Path) -> tuple[Engine, str]:
    """A generator engine in this process runs COUNT events with re-send faults into `topic`; the
    broker (`broker_pid`) is frozen past the request timeout and the producer replaced meanwhile.
    Returns the (closed) engine, for its metrics and settings, and the run id."""
    settings = GeneratorSettings(
        data_dir=data,
        kafka_bootstrap_servers=bootstrap,
        topic=topic,
        create_topic=False,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        degraded_after_s=1,
    )
    gen = Engine(settings, Metrics(CollectorRegistry()))
    await gen.start()
    pid = broker_pid
    try:
        await _until(lambda: gen.producer is not None, 60, "the generator to connect")
        first = gen.producer
        extras = RunExtras(faults=FaultOptions(resend_ratio=0.05))
        run = gen.start_run(RunParams(rate=1000, count=COUNT, seed=11, extras=extras))
        await _until(lambda: run.acknowledged > 1000, 60, "first acknowledgements")

        os.kill(pid, signal.SIGSTOP)
        try:
            # a batch handed over before the freeze waits past the request timeout: its request is
            # in the frozen broker's socket, to be written when it resumes
            oldest = lambda: next(iter(run.pending.values()), time.monotonic())  # noqa: E731
            await _until(lambda: time.monotonic() - oldest() > REQUEST_TIMEOUT_MS / 1000 + 1, 60, "a request timeout")
            _kill_the_sender_on_its_next_request(first)
            await _until(lambda: sender_failure(first) is not None and gen.producer is not first, 60, "the replacement")
            assert run.doubtful > 0  # everything the old producer had not confirmed
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

        await _until(lambda: not run.active, 120, f"the run to end (last error: {gen.last_error})")
        assert run.state == "completed", gen.last_error
        assert run.acknowledged == COUNT and run.delivery_errors > 0 and run.not_delivered == 0
        return gen, run.id
    finally:
        await gen.close()


def test_a_batch_written_by_a_frozen_broker_is_not_written_again_after_a_replacement(
    private_kafka: Broker, tmp_path: Path
) -> None:
    topic = private_kafka.new_topic()
    pid = private_kafka.proc.pid  # type: ignore[attr-defined]
    gen, run_id = asyncio.run(frozen_broker_run(private_kafka.bootstrap, pid, topic, tmp_path / "data"))
    sample = gen.metrics.registry.get_sample_value
    records = read_topic(private_kafka.bootstrap, topic)
    offsets = Counter(r.event["eventOffset"] for r in records if r.event)
    twice = sorted(
        (r.partition, r.offset, off) for r in records if r.event and offsets[off := r.event["eventOffset"]] > 1
    )
    print("DEBUG twice", len(twice), twice[:6], sample("generator_events_found_written_total"))
    assert sample("generator_producer_replacements_total") == 1
    # the path under test: a batch the frozen broker wrote was found, not sent again
    assert (sample("generator_events_found_written_total") or 0) > 0

    assert len(records) == COUNT and set(offsets.values()) == {1}

    # the deliberate re-sends are there, distinguishable: same eventId, new eventOffset each
    ledger = read_ledger(ledger_path(gen.settings.layout.generator_runs, run_id))
    resent = [f for f in ledger.faults if f.kind == "resend"]
    assert resent and ledger.end is not None and ledger.end.faults["resend"] == len(resent)
    by_id = Counter(r.event["eventId"] for r in records if r.event)
    assert all(by_id[f.event_id] >= 2 for f in resent)

    # verify's own reading of the topic: no eventOffset carried by two records
    scan, files = scan_topic(private_kafka.bootstrap, topic, tmp_path, workers=1)
    report = compare(scan, files.rows, files.invalid, tmp_path / "no-merged.csv", tmp_path / "no-rejects")
    assert (report.records, report.offsets_reused, report.rows_duplicated) == (COUNT, 0, 0), report
