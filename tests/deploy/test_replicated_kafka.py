"""A 3-node KRaft cluster (replication factor 3, min.insync.replicas 2) keeps taking acks=all writes
while one node is SIGKILLed, and after it returns every acknowledged record is there exactly once."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contract.kafka_admin import admin_client
from devicestream.kafka_broker import KafkaCluster, ensure_topic, start_node, stop_processes, wait_until_ready
from devicestream.processes import free_ports, kill_process, log_tail
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration

TOPIC = "replicated-events"
PARTITIONS = 3
RATE = 400  # records/s: enough to span the failover, light on 2 shared cores


@dataclass
class Cluster:
    cluster: KafkaCluster
    logs: Path
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    def log_file(self, node_id: int) -> Path:
        return self.logs / f"kafka-{node_id}.log"

    def start(self, node_id: int) -> None:
        node = next(n for n in self.cluster.nodes if n.node_id == node_id)
        self.procs[node_id] = start_node(self.cluster, node, self.log_file(node_id))

    def sigkill(self, node_id: int) -> None:
        kill_process(self.procs.pop(node_id))

    def tails(self) -> str:
        ids = [n.node_id for n in self.cluster.nodes]
        return "\n".join(f"--- kafka-{i}:\n{log_tail(self.log_file(i), 15)}" for i in ids)


@pytest.fixture
@starts_processes
def cluster3(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Cluster]:
    # aiokafka logs every refused connection to the dead node at ERROR; the test reports what matters.
    caplog.set_level(logging.CRITICAL, logger="aiokafka")
    ports = free_ports(6)
    kc = KafkaCluster.on_ports(tmp_path / "kafka", list(zip(ports[::2], ports[1::2], strict=True)), heap="256m")
    c = Cluster(kc, tmp_path / "logs")
    try:
        for n in kc.nodes:
            c.start(n.node_id)
        try:
            asyncio.run(wait_until_ready(c.bootstrap, 120, min_brokers=3))
        except Exception as e:
            raise AssertionError(f"{e}\n{c.tails()}") from e
        yield c
    finally:
        stop_processes(list(c.procs.values()))


async def isr_sizes(bootstrap: str, topic: str) -> list[int]:
    async with admin_client(bootstrap, timeout_s=5) as admin:
        desc = await admin.describe_topics([topic])
    return [len(p["isr"]) for p in desc[0]["partitions"]]


async def eventually(
    pred: Callable[[], Awaitable[bool]], deadline_s: float, what: str, tails: Callable[[], str]
) -> None:
    """The async twin of tests.helpers.wait_for: poll `pred` until true, or fail with the node logs."""
    end = time.monotonic() + deadline_s
    last: BaseException | None = None
    while time.monotonic() < end:
        try:
            if await pred():
                return
        except Exception as e:
            last = e
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; last error {last!r}\n{tails()}")


async def consume_all(bootstrap: str, topic: str) -> Counter[bytes]:
    """Every record value in the topic, counted, read from the beginning up to the current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        seen: Counter[bytes] = Counter()
        deadline = time.monotonic() + 60
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "consuming the topic took over 60s"
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                seen.update(r.value for r in records)
        return seen
    finally:
        await consumer.stop()


async def scenario(c: Cluster) -> None:
    await ensure_topic(c.bootstrap, TOPIC, PARTITIONS, 3, min_insync_replicas=2)
    producer = AIOKafkaProducer(
        bootstrap_servers=c.bootstrap, acks="all", enable_idempotence=True, linger_ms=5, request_timeout_ms=30_000
    )
    await producer.start()
    acked: list[bytes] = []
    failed: list[bytes] = []
    stop = asyncio.Event()

    async def deliver(value: bytes, fut: asyncio.Future) -> None:
        try:
            await fut
            acked.append(value)
        except Exception:
            failed.append(value)

    async def produce() -> int:
        pending: set[asyncio.Task] = set()
        i = 0
        start = time.monotonic()
        while not stop.is_set():
            # Paced by schedule, not by acknowledgements: a stalled partition does not stall the others.
            while i < (time.monotonic() - start) * RATE:
                value = f"event-{i:08d}".encode()
                fut = await producer.send(TOPIC, value, key=str(i % 21).encode())
                t = asyncio.create_task(deliver(value, fut))
                pending.add(t)
                t.add_done_callback(pending.discard)
                i += 1
            await asyncio.sleep(0.01)
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
        return i

    task = asyncio.create_task(produce())
    try:
        await eventually(lambda: _true(len(acked) >= 1000), 60, "1000 acks before the kill", c.tails)
        victim = 2
        c.sigkill(victim)
        at_kill = len(acked)
        # Two of three replicas are in sync (min.insync.replicas 2): acks=all writes go on, on every
        # partition, once leadership has moved off the dead node.
        await eventually(
            lambda: _true(len(acked) >= at_kill + 3 * RATE), 90, "production to continue without node 2", c.tails
        )
        await eventually(
            lambda: _is(isr_sizes(c.bootstrap, TOPIC), [2] * PARTITIONS), 30, "node 2 out of every ISR", c.tails
        )
        c.start(victim)
        await wait_until_ready(c.bootstrap, 90, min_brokers=3)
        await eventually(
            lambda: _is(isr_sizes(c.bootstrap, TOPIC), [3] * PARTITIONS), 90, "node 2 back in every ISR", c.tails
        )
        after_return = len(acked)
        await eventually(lambda: _true(len(acked) >= after_return + RATE), 60, "acks after the return", c.tails)
    finally:
        stop.set()
        sent = await task
        await producer.stop()

    assert not failed, f"{len(failed)} of {sent} sends failed although two replicas stayed in sync"
    seen = await consume_all(c.bootstrap, TOPIC)
    dups = {v: n for v, n in seen.items() if n > 1}
    assert not dups, f"{len(dups)} records written more than once, e.g. {list(dups.items())[:3]}"
    missing = set(acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged records are gone, e.g. {sorted(missing)[:3]}"
    assert len(acked) == sent


async def _true(value: bool) -> bool:
    return value


async def _is(aw: Awaitable[object], expected: object) -> bool:
    return await aw == expected


def test_acks_all_survive_a_sigkilled_broker(cluster3: Cluster) -> None:
    asyncio.run(scenario(cluster3))
