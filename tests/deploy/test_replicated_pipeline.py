"""The whole pipeline on three brokers (`devicestream up --brokers 3`: one KRaft quorum, topic with
replication factor 3 and min.insync.replicas 2). With the generator running, the broker leading a
partition is SIGKILLed: production goes on (acks=all needs two in-sync replicas, two are left), the
Spark job and the merger go on without a restart, the launcher restarts the broker, and afterwards
`devicestream verify` finds every acknowledged event exactly once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from contract.kafka_admin import admin_client
from tests.deploy.conftest import LaunchStack
from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPIC = "device-events"
RATE, SECONDS = 1000, 25
COUNT = RATE * SECONDS


async def _describe(bootstrap: str) -> list[dict]:
    async with admin_client(bootstrap, timeout_s=5) as admin:
        return (await admin.describe_topics([TOPIC]))[0]["partitions"]


def partitions(stack: Stack) -> list[dict]:
    bootstrap = stack.components()["kafka-1"].url
    return asyncio.run(_describe(bootstrap))


def merged_rows(stack: Stack) -> int:
    return stack.merger_status().rows_merged


def test_broker_sigkilled_mid_run(launch_stack: LaunchStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiokafka")  # refused connections to the dead node
    stack = launch_stack({"DEVICESTREAM_KAFKA_HEAP": "256m"}, kafka_ports=6, up_args=("--brokers", "3"))
    brokers = [f"kafka-{i}" for i in (1, 2, 3)]
    logs = stack.logs(*brokers, "spark", "merger", "generator")
    assert "(3 partitions, replication 3)" in stack.out_log.read_text()
    parts = partitions(stack)
    assert all(len(p["replicas"]) == 3 and len(p["isr"]) == 3 for p in parts), parts

    stack.start_run(rate=RATE, count=COUNT, seed=21)
    wait_for(lambda: stack.generator_status().acknowledged >= 3 * RATE, 60, "events acknowledged", logs=logs)

    victim = f"kafka-{partitions(stack)[0]['leader']}"  # a leader: its partitions must move
    before = stack.components()
    killed_at = time.monotonic()
    old_pid = stack.kill(victim)
    acked_at_kill = stack.generator_status().acknowledged
    merged_at_kill = merged_rows(stack)
    assert acked_at_kill < COUNT - 10 * RATE, "the run must still have a while to go when the broker dies"

    # Production, the job and the merger go on while the broker is gone and after it returns.
    states: set[str] = set()

    def producing() -> bool:
        s = stack.generator_status()
        states.add(s.state)
        return s.acknowledged >= acked_at_kill + 5 * RATE

    wait_for(producing, 90, f"production to go on after {victim} was killed", logs=logs, interval=0.25)
    producing_after_s = time.monotonic() - killed_at
    wait_for(
        lambda: merged_rows(stack) > merged_at_kill,
        180,
        f"the job and the merger to merge new rows after {victim} was killed",
        logs=logs,
        interval=0.5,
    )
    stack.wait_restarted(victim, old_pid, timeout=180)
    wait_for(
        lambda: all(len(p["isr"]) == 3 for p in partitions(stack)),
        120,
        f"{victim} back in every ISR",
        logs=logs,
    )

    status = stack.wait_run_ended(timeout=240)
    assert status.state == "completed", status
    assert status.acknowledged == COUNT, status
    report = stack.verify(wait_s=240)
    assert report.records == COUNT, report

    after = stack.components()
    for name in ("spark", "merger", "generator"):
        assert after[name].restarts == 0 and after[name].pid == before[name].pid, (name, after[name])
    assert after[victim].restarts == 1, after[victim]
    print(f"killed {victim}; +{5 * RATE} acks {producing_after_s:.1f}s later; generator states {sorted(states)}")
