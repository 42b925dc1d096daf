"""Benchmark inputs: real encoded events (the generator's own encoder) and batch-file rows in the
Spark job's output format (contract.csv.ROW_COLUMNS)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from contract.csv import BATCH_ROW_HEADER, batch_file_name
from contract.events import CUSTOMER_IDS, DEVICE_IDS, STATUSES
from services.generator.events import EventClock, EventEncoder


def encoded_events(n: int, seed: int = 8) -> list[bytes]:
    """`n` event values exactly as the generator sends them."""
    rng = random.Random(seed)
    enc = EventEncoder()
    clock = EventClock()
    return [enc.encode(rng, clock.now(), 10_000 + i)[1] for i in range(n)]


def write_payload_file(path: Path, n: int = 10_000) -> float:
    """A ProducerPerformance --payload-file of real events (one per line); returns the mean size."""
    values = encoded_events(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(values) + b"\n")
    return sum(len(v) for v in values) / len(values)


def csv_rows(
    n: int, first_offset: int = 10_000, seed: int = 8, start: datetime | None = None, *, kafka: bool = False
) -> bytes:
    """`n` data lines (no header) like merged.csv holds them: events of 1 or 2 readings, a few
    readings without deviceId (an empty field), eventTime 137 us apart. Built column-wise (polars).
    kafka=True: as the Spark job writes them, each line starting with its record's Kafka partition (0)
    and offset (the eventOffset)."""
    rng = np.random.default_rng(seed + first_offset)
    t0 = start or datetime(2026, 11, 28, tzinfo=UTC)
    idx = np.arange(n, dtype=np.int64)
    device_index = (idx % 3 == 2).astype(np.int32)  # rows 0,1 | 2: every third row a second reading
    event_no = (idx // 3) * 2 + (idx % 3 != 0)
    offset = first_offset + event_no
    pool = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(4096)]
    dev = np.array([*DEVICE_IDS, None], dtype=object)
    keys = {"kafkaPartition": pl.repeat(0, n, eager=True, dtype=pl.Int32), "kafkaOffset": offset} if kafka else {}
    df = pl.DataFrame(
        {
            **keys,
            "eventId": pl.Series(pool).gather(event_no % len(pool)),
            "eventOffset": offset,
            "eventPublisher": pl.repeat("device", n, eager=True),
            "customerId": pl.Series(list(CUSTOMER_IDS)).gather(offset % len(CUSTOMER_IDS)),
            "eventTime": pl.Series(
                np.datetime64(t0.replace(tzinfo=None), "us") + (event_no * 137).astype("timedelta64[us]")
            ).dt.strftime("%Y-%m-%dT%H:%M:%S.%6fZ"),
            "deviceIndex": device_index,
            "deviceId": pl.Series(dev[rng.integers(0, len(dev), size=n)].tolist(), dtype=pl.String),
            "temperature": rng.integers(0, 31, size=n, dtype=np.int32),
            "measure": pl.repeat("C", n, eager=True),
            "status": pl.Series(np.array(STATUSES, dtype=object)[rng.integers(0, 3, size=n)].tolist()),
        }
    )
    return df.write_csv(include_header=False, line_terminator="\n", null_value="").encode()


def events_in(rows: int) -> int:
    """How many events (Kafka records) csv_rows(rows) holds: its offsets are first_offset + 0..that - 1."""
    i = rows - 1
    return (i // 3) * 2 + (i % 3 != 0) + 1


def batch_file(rows: int, first_offset: int) -> bytes:
    """One batch file as the Spark job commits it: BATCH_ROW_HEADER, then `rows` keyed rows."""
    return BATCH_ROW_HEADER.encode() + b"\n" + csv_rows(rows, first_offset=first_offset, kafka=True)


def write_batches(folder: Path, count: int, rows: int, first_id: int = 0) -> int:
    """`count` batch files of `rows` rows each, as the Spark job writes them; returns the total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        data = batch_file(rows, first_offset=10_000 + (first_id + i) * events_in(rows))
        (folder / batch_file_name(first_id + i)).write_bytes(data)
        total += len(data)
    return total
