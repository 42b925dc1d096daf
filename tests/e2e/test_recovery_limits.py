"""Issue #13's scenarios 6 and 7 end to end, on one stack started by the launcher (conftest.py's
`running_stack`) whose merger has a small read-ahead budget: the generator's offsets file lost
after an `invalid_ratio` run, and batch files far larger than the merger's byte budget. Each ends
with `devicestream verify` exit 0. They share the stack and run in file order."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import string
import sys
from collections.abc import Iterator

import httpx
import orjson
import psutil
import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.conftest import Stack, running_stack
from tests.helpers import wait_for
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration

TOPIC = "device-events"
#: far below one big record: every batch file holding one is larger than the whole budget
READ_AHEAD_BYTES = 100_000
BIG_RECORDS = 8
BIG_ID_CHARS = 300_000


@pytest.fixture(scope="module")
@starts_processes
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The launcher passes its environment to the components: the merger reads MERGER_READ_AHEAD_BYTES."""
    with running_stack(tmp_path_factory.mktemp("e2e-limits"), MERGER_READ_AHEAD_BYTES=str(READ_AHEAD_BYTES)) as st:
        yield st


def test_6_generator_offsets_file_lost_after_an_invalid_ratio_run(stack: Stack) -> None:
    """The newest records of the partitions may be malformed; they carry the next eventOffset in a
    header, so the restarted generator continues past every offset already used."""
    stack.start_run(rate=1000, count=5000, seed=61, invalid_ratio=0.3)
    assert stack.wait_run_ended().state == "completed"
    state = stack.data / "generator" / "state.json"
    assert state.exists()
    # Deleted before the kill (the generator is idle: it writes the file only to reserve a block),
    # so a restart by the launcher cannot read it first.
    state.unlink()
    old = stack.kill("generator")
    stack.wait_restarted("generator", old)
    # It read the topic back: no state file, the next offset told by the topic's newest records.
    continued = [ln for ln in (stack.data / "logs" / "generator.log").read_text().splitlines() if "continue at" in ln]
    assert "state_next=None topic_next=" in continued[-1] and "topic_next=None" not in continued[-1], continued
    stack.start_run(rate=1000, count=5000, seed=62, invalid_ratio=0.3)
    status = stack.wait_run_ended()
    assert status.state == "completed" and status.acknowledged == 5000, status
    report = stack.verify()
    assert report.offsets_reused == 0
    assert report.invalid_records > 0


def _big_event(offset: int, device_id: str) -> bytes:
    return orjson.dumps(
        {
            "eventId": f"big-{offset}",
            "eventOffset": offset,
            "eventPublisher": "device",
            "customerId": "CI00100",
            "data": {"devices": [{"deviceId": device_id, "temperature": 7, "measure": "C", "status": "SUCCESS"}]},
            "eventTime": "2026-11-28T03:33:11.123456Z",
        }
    )


def test_7_batch_files_larger_than_the_read_ahead_budget_are_merged(stack: Stack) -> None:
    merger_env = psutil.Process(stack.pid("merger")).environ()
    assert merger_env.get("MERGER_READ_AHEAD_BYTES") == str(READ_AHEAD_BYTES)
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + ' ,"'
    base = 7 * 10**12
    ids = {base + i: f"B{i},{''.join(rng.choices(alphabet, k=BIG_ID_CHARS))}" for i in range(BIG_RECORDS)}
    before = stack.merger_status().rows_merged

    async def produce() -> None:
        # all sent before one flush: several land in the same micro-batch
        p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=2_000_000)
        await p.start()
        try:
            futures = [await p.send(TOPIC, _big_event(o, d), key=b"CI00100") for o, d in ids.items()]
            await asyncio.gather(*futures)
        finally:
            await p.stop()

    asyncio.run(produce())
    wait_for(
        lambda: stack.merger_status().rows_merged >= before + BIG_RECORDS,
        300,
        "the merger to merge the big records",
        logs=stack.logs("spark", "merger"),
        interval=1.0,
    )
    stack.verify()
    st = stack.merger_status()
    assert st.quarantined == [] and st.last_error is None

    body = httpx.get(f"{stack.gateway}/merged.csv", timeout=60).content
    csv.field_size_limit(sys.maxsize)
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    found = {int(r["eventOffset"]): r for r in rows if r["eventId"].startswith("big-")}
    assert sorted(found) == sorted(ids)
    for offset, device_id in ids.items():
        assert found[offset]["deviceId"] == device_id, offset
        quoted = '"' + device_id.replace('"', '""') + '"'
        assert body.count(quoted.encode()) == 1, offset
