"""Stand-in Spark job (plus the merger's appending half): reads KAFKA_TOPIC from the beginning,
appends one contract row per event to merger/merged.csv, and keeps spark/progress.json and the
stand-in merger's status file as the real components would. Not an HTTP service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import TopicPartition

from contract.csv import ROW_HEADER
from contract.files import atomic_write_bytes
from contract.layout import DataLayout
from contract.merger_status import Freshness, MergerStatus
from contract.progress import ProgressTotals, SparkProgress
from kafka_io.admin import topic_partitions
from kafka_io.clients import make_consumer
from service_kit.logs import configure_logging

log = logging.getLogger("standin.spark")


def row(ev: dict) -> str:
    d = (ev.get("data") or {}).get("devices") or [{}]
    r = d[0]
    cols = [
        ev["eventId"],
        ev["eventOffset"],
        ev["eventPublisher"],
        ev["customerId"],
        ev["eventTime"],
        0,
        r.get("deviceId") or "",
        r.get("temperature", ""),
        r.get("measure", ""),
        r.get("status") or "",
    ]
    return ",".join(str(c) for c in cols)


async def main(layout: DataLayout, bootstrap: str, topic: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    parts = await topic_partitions(bootstrap, topic)
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    layout.merger_dir.mkdir(parents=True, exist_ok=True)
    merged = layout.merged_csv
    if not merged.exists():
        merged.write_text(ROW_HEADER + "\n")
    started = time.time()
    batch_id = -1
    totals = ProgressTotals()
    fresh_last: float | None = None
    try:
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=250, max_records=5000)
            records = [r for rs in got.values() for r in rs]
            batch_id += 1
            lines = []
            for rec in records:
                try:  # a run with faults writes malformed records on purpose: the real job rejects them
                    ev = orjson.loads(rec.value)
                    line = row(ev)
                    t = datetime.strptime(ev["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
                except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # ValueError: not JSON
                    totals.rejects += 1
                    continue
                lines.append(line)
                fresh_last = time.time() - t
            if lines:
                with merged.open("a") as f:
                    f.write("\n".join(lines) + "\n")
            totals.input_rows += len(records)
            totals.rows_out += len(lines)
            totals.batches += 1
            ends = await consumer.end_offsets(tps)
            positions = {str(tp.partition): await consumer.position(tp) for tp in tps}
            latest = {str(tp.partition): o for tp, o in ends.items()}
            now = time.time()
            SparkProgress(
                state="running",
                started_at=started,
                updated_at=now,
                pid=os.getpid(),
                batch_id=batch_id,
                num_input_rows=len(records),
                rows_out=len(lines),
                input_rows_per_second=len(records) / 0.25,
                processed_rows_per_second=len(records) / 0.25,
                batch_duration_ms=5,
                end_offsets=positions,
                latest_offsets=latest,
                offsets_behind_latest=sum(latest[p] - positions[p] for p in latest),
                totals=totals,
            ).write(layout.spark_progress)
            status = MergerStatus(
                batches_merged=batch_id + 1,
                last_batch_id=batch_id,
                rows_merged=totals.rows_out,
                newest_batch_id=batch_id,
                lag_batches=0,
                last_merge_at=now,
                freshness=Freshness(last_s=fresh_last, p50_s=fresh_last, p99_s=fresh_last),
            )
            atomic_write_bytes(
                layout.merger_dir / "standin-status.json", status.model_dump_json().encode(), durable=False
            )
    finally:
        await consumer.stop()


if __name__ == "__main__":
    configure_logging("standin-spark")
    asyncio.run(
        main(
            DataLayout(Path(os.environ["DEVICESTREAM_DATA_DIR"])),
            os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            os.environ["KAFKA_TOPIC"],
        )
    )
