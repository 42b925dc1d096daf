"""Operator scenarios on the whole stack (started by `devicestream up`, see conftest.py): verify
after retention deleted the oldest records, and a stop through the gateway with the broker frozen."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import httpx
import pytest

from contract.api import GeneratorStatus
from contract.kafka_admin import delete_records, end_offsets, topic_partitions
from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

TOPIC = "device-events"


async def _delete_oldest_half(bootstrap: str) -> dict[int, int]:
    """Delete each partition's older half, as retention deletes old segments."""
    ends = await end_offsets(bootstrap, TOPIC)
    cut = {p: end // 2 for p, end in ends.items() if end > 1}
    await delete_records(bootstrap, TOPIC, cut)
    return cut


def test_verify_after_retention_deleted_the_oldest_records(stack: Stack) -> None:
    stack.start_run(rate=2000, count=6000, seed=21, invalid_ratio=0.05)
    assert stack.wait_run_ended().state == "completed"
    before = stack.verify()
    assert before.partitions_truncated == 0

    cut = asyncio.run(_delete_oldest_half(stack.bootstrap))
    assert len(cut) == len(asyncio.run(topic_partitions(stack.bootstrap, TOPIC)))
    after = stack.verify(wait_s=30)
    assert after.partitions_truncated == len(cut)
    assert after.records < before.records
    assert after.rows_before_retention > 0  # merged rows of deleted records: counted, not problems
    assert after.rows_in_merged == before.rows_in_merged


def test_stop_through_the_gateway_with_the_broker_frozen(stack: Stack) -> None:
    stack.start_run(rate=2000, seed=22)
    wait_for(lambda: stack.generator_status().acknowledged > 2000, 60, "events acknowledged")
    broker = stack.pid("kafka")
    os.kill(broker, signal.SIGSTOP)
    try:
        wait_for(
            lambda: stack.generator_status().state == "degraded",
            60,
            "the generator to notice the frozen broker",
            logs=stack.logs("generator"),
        )
        # The gateway forwards with its command timeout: the generator's answer must come first.
        r = httpx.post(f"{stack.gateway}/generator/stop", timeout=30)
        assert r.status_code == 200, r.text
        st = GeneratorStatus.model_validate_json(r.content)
        assert st.state == "stopped" and st.not_delivered > 0, st
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker, signal.SIGCONT)
    # Whatever Kafka did write ends up merged exactly once.
    stack.verify()
