"""Stand-in generator: the documented /generator/* routes and status document; with
KAFKA_BOOTSTRAP_SERVERS set it really produces contract-shaped events to KAFKA_TOPIC."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from contract.api import RateRequest as Rate
from contract.api import SetRate, StartAtRate
from contract.api import StartRequest as Start
from contract.generator_options import peak_rate
from tests.gateway.standins.common import serve

MAX_RATE = 200_000


class Gen:
    def __init__(self, producer: AIOKafkaProducer | None, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.state = "idle"
        self.run: dict[str, Any] | None = None
        self.sent = self.acked = 0
        self.offset_first: int | None = None
        self.offset_last: int | None = None
        self.next_offset = 10_000
        self.task: asyncio.Task[None] | None = None
        self.times: deque[tuple[float, int]] = deque(maxlen=200)

    def rate(self, window: float) -> float:
        now = time.monotonic()
        pts = [(t, n) for t, n in self.times if now - t <= window]
        if len(pts) < 2 or self.state != "running":
            return 0.0
        return (pts[-1][1] - pts[0][1]) / max(1e-3, pts[-1][0] - pts[0][0])

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "run": self.run,
            "sent": self.sent,
            "acknowledged": self.acked,
            "invalid": 0,
            "delivery_errors": 0,
            "rate_1s": round(self.rate(1.0), 2),
            "rate_10s": round(self.rate(10.0), 2),
            "offset_first": self.offset_first,
            "offset_last": self.offset_last,
            "last_error": None,
        }

    def event(self) -> bytes:
        off = self.next_offset
        self.next_offset += 1
        self.offset_first = off if self.offset_first is None else self.offset_first
        self.offset_last = off
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc = {
            "eventId": str(uuid.uuid4()),
            "eventOffset": off,
            "eventPublisher": "device",
            "customerId": f"CI{100 + off % 21:05d}",
            "data": {"devices": [{"deviceId": "D001", "temperature": off % 31, "measure": "C", "status": "SUCCESS"}]},
            "eventTime": now,
        }
        return orjson.dumps(doc)

    async def loop(self, params: Any, rate: float) -> None:
        t0 = time.monotonic()
        while self.state == "running":
            elapsed = time.monotonic() - t0
            due = int(rate * elapsed) - self.sent
            if params.count is not None:
                due = min(due, params.count - self.sent)
            if due > 0:
                if self.producer is not None:
                    futs = [await self.producer.send(self.topic, self.event()) for _ in range(due)]
                    await asyncio.gather(*futs)
                else:  # no Kafka: only count (cheap at any rate)
                    self.next_offset += due
                    self.offset_first = self.offset_first if self.offset_first is not None else self.next_offset - due
                    self.offset_last = self.next_offset - 1
                self.sent += due
                self.acked += due
            self.times.append((time.monotonic(), self.sent))
            done_count = params.count is not None and self.sent >= params.count
            done_time = params.duration_s is not None and elapsed >= params.duration_s
            if done_count or done_time:
                self.state = "completed"
                assert self.run is not None
                self.run.update(state="completed", ended_at=time.time())
                return
            await asyncio.sleep(0.05)


def create_app() -> FastAPI:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    topic = os.environ.get("KAFKA_TOPIC", "device-events")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5) if bootstrap else None
        if producer is not None:
            await producer.start()
        app.state.gen = Gen(producer, topic)
        yield
        g: Gen = app.state.gen
        g.state = "stopped" if g.state == "running" else g.state
        if g.task:
            with contextlib.suppress(BaseException):
                await g.task
        if producer is not None:
            await producer.stop()

    app = FastAPI(lifespan=lifespan)

    def peak(body: Any) -> float:
        """The run's rate: `rate`, or a profile's highest (this stand-in paces at that)."""
        return body.rate if isinstance(body, StartAtRate | SetRate) else peak_rate(body.profile)[1]

    def over_max(rate: float) -> JSONResponse | None:
        if rate <= MAX_RATE:
            return None
        err = {"type": "less_than_equal", "loc": ["body", "rate"], "msg": f"at most {MAX_RATE}", "input": rate}
        return JSONResponse({"detail": [err]}, status_code=422)

    @app.post("/generator/start", status_code=202)
    async def start(body: Start) -> Any:
        rate = peak(body)
        if (too_fast := over_max(rate)) is not None:
            return too_fast
        g: Gen = app.state.gen
        if g.state == "running":
            assert g.run is not None
            return JSONResponse({"detail": f"run {g.run['id']} is active; stop it first"}, status_code=409)
        g.sent = g.acked = 0
        g.offset_first = g.offset_last = None
        g.times.clear()
        g.state = "running"
        g.run = {
            "id": uuid.uuid4().hex[:12],
            "state": "running",
            "params": {**body.model_dump(), "rate": rate},
            "started_at": time.time(),
            "ended_at": None,
        }
        g.task = asyncio.create_task(g.loop(body, rate))
        return g.run

    @app.put("/generator/rate")
    async def rate(body: Rate) -> Any:
        new_rate = peak(body)
        if (too_fast := over_max(new_rate)) is not None:
            return too_fast
        g: Gen = app.state.gen
        if g.state != "running" or g.run is None:
            return JSONResponse({"detail": "no active run"}, status_code=409)
        g.run["params"]["rate"] = new_rate
        return g.run

    @app.post("/generator/stop")
    async def stop() -> Any:
        g: Gen = app.state.gen
        if g.state == "running":
            g.state = "stopped"
            if g.task:
                await g.task
            assert g.run is not None
            g.run.update(state="stopped", ended_at=time.time())
        return g.status()

    @app.get("/generator/status")
    async def status() -> Any:
        return app.state.gen.status()

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "alive"}

    return app


if __name__ == "__main__":
    serve(create_app(), "generator")
