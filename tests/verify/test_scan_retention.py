"""verify's topic scan on a real broker after the oldest records were deleted (as retention does)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from contract.csv import ROW_COLUMNS
from contract.kafka_admin import delete_records
from devicestream.validity import expected_rows
from devicestream.verify import compare, scan_topic
from tests.conftest import Broker
from tests.validity_cases import GOOD

pytestmark = pytest.mark.integration


async def _produce_then_delete(bootstrap: str, topic: str, n: int, delete_before: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, orjson.dumps({**GOOD, "eventOffset": 10000 + i}), partition=0)
    finally:
        await producer.stop()
    await delete_records(bootstrap, topic, {0: delete_before})


def test_scan_after_retention_knows_what_it_cannot_check(kafka: Broker, tmp_path: Path) -> None:
    topic = kafka.new_topic(partitions=1)
    asyncio.run(_produce_then_delete(kafka.bootstrap, topic, 5, delete_before=2))

    scan, files = scan_topic(kafka.bootstrap, topic, tmp_path, workers=1)
    assert scan.start_offsets == {0: 2}
    assert scan.end_offsets == {0: 5}
    assert scan.records == 3
    assert scan.first_event_offsets == {0: 10002}

    # merged.csv as the pipeline wrote it before retention ran: every record's two rows.
    merged = tmp_path / "merged.csv"
    lines = [",".join(ROW_COLUMNS)]
    for i in range(5):
        lines += [",".join(r) for r in expected_rows(orjson.dumps({**GOOD, "eventOffset": 10000 + i}))]
    merged.write_text("\n".join(lines) + "\n")
    report = compare(scan, files.rows, files.invalid, merged, tmp_path / "rejects")
    assert report.ok, report.model_dump()
    assert report.rows_before_retention == 4
    assert report.partitions_truncated == 1
