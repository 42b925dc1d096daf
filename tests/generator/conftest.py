"""Running the generator as a real process against a real broker, and reading its topic back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import TopicPartition

from contract.api import GeneratorStatus
from contract.kafka_admin import offsets_consumer, topic_partitions
from devicestream.processes import free_ports
from tests.documents import generator_status
from tests.helpers import ServiceProcess, wait_for
from tests.tiers import starts_processes


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def event(self) -> dict | None:
        try:
            doc = orjson.loads(self.value or b"")
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None


async def _read_all(bootstrap: str, topic: str) -> list[Record]:
    parts = await topic_partitions(bootstrap, topic)
    async with offsets_consumer(bootstrap) as consumer:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Record] = []
        todo = {tp for tp in tps if end[tp] > 0}
        while todo:
            got = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, recs in got.items():
                out += [Record(tp.partition, r.offset, r.key, r.value) for r in recs]
            for tp in list(todo):
                if await consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
        return out


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record in `topic` now (up to each partition's end offset at the time of the call)."""
    return asyncio.run(_read_all(bootstrap, topic))


@dataclass
class GeneratorProcess:
    """A generator service process started by `generator_factory`, driven over HTTP."""

    proc: ServiceProcess
    url: str

    def status(self) -> GeneratorStatus:
        return generator_status(self.url)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=60)

    def put(self, path: str, body: dict) -> httpx.Response:
        return httpx.put(f"{self.url}{path}", json=body, timeout=10)

    def wait_state(self, states: set[str], timeout: float) -> GeneratorStatus:
        return wait_for(
            lambda: (s := self.status()).state in states and s,
            timeout,
            f"generator state in {states}",
            logs=[self.proc.log_file],
        )


@pytest.fixture
@starts_processes
def generator_factory(tmp_path: Path) -> Iterator[Callable[..., GeneratorProcess]]:
    """Start generator processes (stopped at the end of the test)."""
    started: list[ServiceProcess] = []

    def start(bootstrap: str, topic: str, data_dir: Path | None = None, **env: str) -> GeneratorProcess:
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        proc = ServiceProcess(
            "services.generator",
            {
                "GENERATOR_PORT": str(port),
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "KAFKA_TOPIC": topic,
                "DEVICESTREAM_DATA_DIR": str(data_dir or tmp_path / "data"),
                **env,
            },
            tmp_path / f"generator-{len(started)}.log",
            f"{url}/readyz",
        )
        started.append(proc)
        proc.start()
        return GeneratorProcess(proc, url)

    try:
        yield start
    finally:
        for p in started:
            p.stop()
