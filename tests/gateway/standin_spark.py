"""Stand-in Spark job for the gateway tests (real Spark takes about a minute to start, and these
tests kill, freeze and restart it): reads KAFKA_TOPIC, writes one batch file per poll that got
records into spark/rows/ the way the Spark job commits them (tests/merger/batches.py), for the
real merger to merge, and keeps spark/progress.json. Its checkpoint (batch id, offsets read,
totals) is a file under spark/checkpoint/, so a restart resumes where it stopped, as Spark's does,
even when the test deleted progress.json. Not an HTTP service."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from contract.csv import ROW_HEADER
from contract.layout import DataLayout
from contract.progress import SparkProgress, read_progress_or_none
from kafka_io.admin import topic_partitions
from kafka_io.clients import make_consumer
from service_kit.logs import configure_logging
from tests.merger.batches import write_batch

POLL_S = 0.25


def rows_of(ev: dict[str, Any]) -> list[str]:
    """merged.csv's rows of one event: one per reading, one without a device when it has none."""
    readings = (ev.get("data") or {}).get("devices") or [{}]
    head = [ev["eventId"], ev["eventOffset"], ev["eventPublisher"], ev["customerId"], ev["eventTime"]]
    out = []
    for i, r in enumerate(readings):
        tail = [i, r.get("deviceId") or "", r.get("temperature", ""), r.get("measure", ""), r.get("status") or ""]
        out.append(",".join(str(c) for c in (*head, *tail)))
    return out


def rows_and_rejects(records: list[Any]) -> tuple[list[str], int]:
    """The rows of the well-formed records, and how many were not: a run with faults writes
    malformed records on purpose, which the real job rejects (the stand-in must not die on them)."""
    lines: list[str] = []
    rejects = 0
    for rec in records:
        try:
            lines.extend(rows_of(orjson.loads(rec.value)))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # ValueError: not JSON
            rejects += 1
    return lines, rejects


async def main(layout: DataLayout, bootstrap: str, topic: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    checkpoint = layout.spark_checkpoint / "standin.json"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    done = read_progress_or_none(checkpoint) or SparkProgress(batch_id=-1)
    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    consumer.assign(tps)
    read = done.partition_offsets()
    for tp in tps:
        if tp.partition in read:
            consumer.seek(tp, read[tp.partition])
        else:
            await consumer.seek_to_beginning(tp)
    started = time.time()
    try:
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=int(POLL_S * 1000), max_records=5000)
            records = [r for rs in got.values() for r in rs]
            lines, rejects = rows_and_rejects(records)
            positions = {str(tp.partition): await consumer.position(tp) for tp in tps}
            if records:  # a batch: its file (the commit point), then the checkpoint
                assert done.batch_id is not None
                done.batch_id += 1
                write_batch(layout.spark_rows, done.batch_id, "\n".join([ROW_HEADER, *lines, ""]))
                done.totals.input_rows += len(records)
                done.totals.rows_out += len(lines)
                done.totals.rejects += rejects
                done.totals.batches += 1
                done.end_offsets = positions
                done.write(checkpoint)
            latest = {str(tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
            SparkProgress(
                state="running",
                started_at=started,
                updated_at=time.time(),
                pid=os.getpid(),
                batch_id=done.batch_id if done.batch_id is not None and done.batch_id >= 0 else None,
                num_input_rows=len(records),
                rows_out=len(lines),
                input_rows_per_second=len(records) / POLL_S,
                processed_rows_per_second=len(records) / POLL_S,
                batch_duration_ms=5,
                end_offsets=positions,
                latest_offsets=latest,
                offsets_behind_latest=sum(latest[p] - positions[p] for p in latest),
                totals=done.totals,
            ).write(layout.spark_progress)
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
