"""Test data: seeded device events (the contract of issue 3), bad records, Kafka producing, and
reading committed batch files back."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from contract.csv import parse_batch_file_name
from contract.events import CUSTOMER_IDS, DEVICE_IDS, FIRST_EVENT_OFFSET, MEASURE, STATUSES

BASE_TIME = datetime(2026, 11, 28, 3, 33, 11, 123456, tzinfo=UTC)


def make_event(rng: random.Random, event_offset: int) -> dict[str, Any]:
    devices = [
        {
            "deviceId": rng.choice([*DEVICE_IDS, None]),
            "temperature": rng.randint(0, 30),
            "measure": MEASURE,
            "status": rng.choice([*STATUSES, None]),
        }
        for _ in range(rng.randint(0, 3))
    ]
    t = BASE_TIME + timedelta(microseconds=rng.randint(0, 10**9))
    return {
        "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventOffset": event_offset,
        "eventPublisher": "device",
        "customerId": rng.choice(CUSTOMER_IDS),
        "data": {"devices": devices},
        "eventTime": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def make_events(seed: int, count: int, first_offset: int = FIRST_EVENT_OFFSET) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_event(rng, first_offset + i) for i in range(count)]


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def expected_rows(events: Iterable[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The rows the job must write for valid `events`, as CSV field tuples, sorted."""
    out = []
    for e in events:
        for i, d in enumerate(e["data"]["devices"]):
            out.append(
                (
                    e["eventId"],
                    str(e["eventOffset"]),
                    e["eventPublisher"],
                    e["customerId"],
                    e["eventTime"],
                    str(i),
                    d["deviceId"] or "",
                    str(d["temperature"]),
                    d["measure"],
                    d["status"] or "",
                )
            )
    return sorted(out)


async def _produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        batch = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) records and wait until every one is acknowledged."""
    asyncio.run(_produce(bootstrap, topic, records))


def event_records(events: Iterable[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(e["customerId"].encode(), encode(e)) for e in events]


def committed_files(folder: Path) -> dict[int, Path]:
    """Committed batch files by batch id (temp names ignored, as the merger does)."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.iterdir():
        batch_id = parse_batch_file_name(p.name)
        if batch_id is not None:
            out[batch_id] = p
    return dict(sorted(out.items()))


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def read_all(folder: Path) -> list[tuple[str, ...]]:
    """Every data row of every committed file of `folder`, unsorted (duplicates kept)."""
    rows: list[tuple[str, ...]] = []
    for path in committed_files(folder).values():
        _, data = read_csv(path)
        rows.extend(tuple(r) for r in data)
    return rows
