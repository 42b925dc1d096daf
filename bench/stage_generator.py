"""Generator: sustained events/s into the broker vs Kafka's ProducerPerformance (same broker,
same record bytes, acks=all), and rate accuracy measured from the records' Kafka timestamps.

The generator runs as the real service process (`python -m services.generator`), driven over
its REST API; the runs ask for an unreachable rate (GENERATOR_MAX_RATE raised) to measure the
ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from aiokafka import TopicPartition

from bench.common import Config, Figure, Spread, StageError, StageResult, Target, wait_until
from bench.data import write_payload_file
from bench.procs import Broker, Service, py_spy, service
from bench.profiles import speedscope_top
from contract.api import GeneratorStatus
from contract.kafka import PLAINTEXT, KafkaSecurity
from devicestream.paths import jars_dir
from devicestream.processes import free_ports
from kafka_io.clients import make_consumer
from kafka_io.java import write_client_properties

UNLIMITED = 10_000_000.0
THROUGHPUT_TARGET = 100_000.0
RATES = (1.0, 100.0, 10_000.0, 50_000.0)


@dataclass(frozen=True)
class GenSizes:
    events: int
    reps: int
    window_s: float


FULL = GenSizes(events=2_000_000, reps=3, window_s=10.0)
QUICK = GenSizes(events=300_000, reps=2, window_s=3.0)


#: Both producers compress alike: the generator's default codec, set explicitly on both sides.
COMPRESSION = "zstd"


def generator_env(broker: Broker, topic: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_TOPIC": topic,
        "DEVICESTREAM_DATA_DIR": str(data_dir),
        "GENERATOR_PORT": str(port),
        "GENERATOR_MAX_RATE": str(UNLIMITED),
        "GENERATOR_COMPRESSION": COMPRESSION,
    }


@contextlib.contextmanager
def generator_on(broker: Broker, work: Path, topic: str) -> Iterator[Service]:
    """A generator service producing to `topic` of `broker`, on a free port, with its data under `work`."""
    (port,) = free_ports(1)
    data = work / f"gen-{topic}"
    with service(
        "generator", "services.generator", port, generator_env(broker, topic, data, port), data / "generator.log"
    ) as g:
        yield g


def run_and_wait(gen: Service, body: dict, timeout_s: float) -> GeneratorStatus:
    """Start a run, wait until it ends; the final status (StageError unless it completed)."""
    r = httpx.post(f"{gen.base_url}/generator/start", json=body, timeout=10)
    if r.status_code != 202:
        raise StageError(f"POST /generator/start {body} answered {r.status_code}: {r.text[:500]}")

    def done() -> GeneratorStatus | None:
        gen.check_alive()
        st = GeneratorStatus.model_validate_json(httpx.get(f"{gen.base_url}/generator/status", timeout=5).content)
        return st if st.run is not None and st.run.state not in ("running", "degraded") else None

    st = wait_until(done, timeout_s, f"generator run {body}", interval_s=0.1)
    assert st.run is not None
    if st.run.state != "completed":
        raise StageError(f"generator run ended {st.run.state}: {st.last_error}")
    return st


def generator_throughput(gen: Service, events: int, seed: int) -> float:
    st = run_and_wait(gen, {"rate": UNLIMITED, "count": events, "seed": seed}, timeout_s=300)
    run = st.run
    assert run is not None and run.ended_at is not None
    if st.acknowledged != events:
        raise StageError(f"generator acknowledged {st.acknowledged} of {events} events")
    return events / (run.ended_at - run.started_at)


_PERF_RE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


def producer_performance(broker: Broker, topic: str, events: int, payload: Path) -> float:
    cmd = [
        "java",
        "-Xmx512m",
        "-cp",
        f"{jars_dir('kafka')}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(events),
        "--payload-file",
        str(payload),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={broker.bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        f"compression.type={COMPRESSION}",
        "linger.ms=5",
        "batch.size=262144",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as d:
        if broker.security.kafka_security_protocol != "PLAINTEXT":  # TLS / SASL: Kafka's own client.properties
            cmd += ["--producer.config", str(write_client_properties(broker.security, Path(d) / "client.properties"))]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    matches = _PERF_RE.findall(res.stdout)
    if res.returncode != 0 or not matches:
        raise StageError(f"ProducerPerformance failed ({res.returncode}): {res.stdout[-800:]} {res.stderr[-800:]}")
    sent, rate = matches[-1]
    if int(sent) != events:
        raise StageError(f"ProducerPerformance sent {sent} of {events}")
    return float(rate)


async def _timestamps(
    bootstrap: str, topic: str, expected: int, partitions: int = 3, security: KafkaSecurity = PLAINTEXT
) -> list[int]:
    """CreateTime (ms) of the `expected` records of `topic` (stamped by the producer as it takes each)."""
    consumer = make_consumer(
        bootstrap,
        security,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        out: list[int] = []
        deadline = time.monotonic() + 120
        while len(out) < expected:
            if time.monotonic() > deadline:
                raise StageError(f"read {len(out)} of {expected} records of {topic} within 120 s")
            batch = await consumer.getmany(timeout_ms=500, max_records=200_000)
            for recs in batch.values():
                out.extend(r.timestamp for r in recs)
        return out
    finally:
        await consumer.stop()


def achieved_rate(timestamps: list[int], rate: float, window_s: float) -> tuple[float, int]:
    """Events per second with a CreateTime inside [first + 1 s + half an interval, + window_s)."""
    ts = sorted(timestamps)
    start = ts[0] + 1000 + 500 / rate
    end = start + window_s * 1000
    n = sum(1 for t in ts if start <= t < end)
    return n / window_s, n


def rate_timeline(timestamps: list[int], step_ms: int = 100) -> list[int]:
    """Records per `step_ms` from the first record on (what the rate looked like, for a miss)."""
    ts = sorted(timestamps)
    out = [0] * ((ts[-1] - ts[0]) // step_ms + 1)
    for t in ts:
        out[(t - ts[0]) // step_ms] += 1
    return out


def rate_accuracy(
    gen_factory: Callable[[str], contextlib.AbstractContextManager[Service]],
    broker: Broker,
    rate: float,
    window_s: float,
    tag: str,
) -> tuple[float, int]:
    topic = broker.topic(f"bench-rate-{tag}-{int(rate)}")
    with gen_factory(topic) as gen:
        st = run_and_wait(gen, {"rate": rate, "duration_s": window_s + 2, "seed": 1}, timeout_s=window_s + 120)
    ts = asyncio.run(_timestamps(broker.bootstrap, topic, st.acknowledged, security=broker.security))
    achieved, n = achieved_rate(ts, rate, window_s)
    return achieved, n, ts


def throughput_only(cfg: Config, broker: Broker, work: Path) -> Spread:
    """The generator alone, for stages that compare against it without running this one."""
    sizes = QUICK if cfg.quick else FULL
    topic = broker.topic("bench-gen-alone")
    (port,) = free_ports(1)
    data = work / "gen-alone"
    with service(
        "generator", "services.generator", port, generator_env(broker, topic, data, port), data / "g.log"
    ) as g:
        return Spread.of([generator_throughput(g, sizes.events, seed=rep) for rep in range(sizes.reps)])


def run(cfg: Config, broker: Broker, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("generator")
    payload = work / "payload.txt"
    mean_size = write_payload_file(payload)

    def gen_on(topic: str) -> contextlib.AbstractContextManager[Service]:
        return generator_on(broker, work, topic)

    gen_topic = broker.topic("bench-gen")
    perf_topic = broker.topic("bench-perf")
    gen_rates: list[float] = []
    perf_rates: list[float] = []
    profile: tuple[str, str] | None = None
    with gen_on(gen_topic) as gen:
        generator_throughput(gen, min(sizes.events, 50_000), seed=99)  # warm-up: connections, JIT-free but caches
        for rep in range(sizes.reps):
            gen_rates.append(generator_throughput(gen, sizes.events, seed=rep))
            perf_rates.append(producer_performance(broker, perf_topic, sizes.events, payload))
        if Spread.of(gen_rates).median < THROUGHPUT_TARGET:
            out = cfg.profiles / "generator-throughput.speedscope.json"
            est = sizes.events / max(Spread.of(gen_rates).median, 1.0)
            with py_spy(gen.pid, out, est + 5):
                time.sleep(0.5)
                generator_throughput(gen, sizes.events, seed=77)
            profile = (str(out), speedscope_top(out))

    fig = Figure(
        stage="generator",
        name="throughput (acks=all)",
        unit="events/s",
        value=Spread.of(gen_rates),
        baseline_name="ProducerPerformance (kafka-tools 4.1.1), real event payloads",
        baseline=Spread.of(perf_rates),
        target=Target("value", ">=", THROUGHPUT_TARGET, ">= 100,000 events/s; ratio reported"),
        sizes={"events_per_rep": sizes.events, "reps": sizes.reps, "mean_record_bytes": round(mean_size, 1)},
        notes=[
            "generator service process, rate asked above its reach, count-bounded runs; "
            "events/s = acknowledged / (ended_at - started_at)",
            f"both producers: acks=all, idempotent, {COMPRESSION}, linger.ms=5, batch.size=256 KiB (the "
            "generator's settings), 3-partition topic on the same broker; ProducerPerformance sends the generator's "
            "encoded events from a --payload-file (10,000 distinct events), without keys",
        ],
    )
    if profile:
        fig.profile, summary = profile
        fig.notes.append(summary)
    res.figures.append(fig)

    tag = str(int(time.time()))
    for rate in RATES:
        achieved, n, ts = rate_accuracy(gen_on, broker, rate, sizes.window_s, tag)
        f = Figure(
            stage="generator",
            name=f"rate accuracy @ {rate:,.0f}/s",
            unit="events/s",
            value=Spread.of([achieved]),
            baseline_name="requested rate",
            baseline=Spread.of([rate]),
            target=Target("ratio", "within", 0.01, "achieved/requested within +-1%"),
            sizes={"window_s": sizes.window_s, "events_in_window": n},
            notes=["achieved = records whose Kafka CreateTime falls in one window, 1 s after the run's first record"],
        )
        if cfg.quick:
            f.notes.append(f"quick mode: {sizes.window_s:.0f} s window instead of 10 s")
        if not f.met:
            per = rate_timeline(ts)
            out = cfg.profiles / f"generator-rate-{int(rate)}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(orjson.dumps({"rate": rate, "records_per_100ms": per}))
            f.profile = str(out)
            expect = rate / 10
            f.notes.append(
                f"records per 100 ms over the run (expected {expect:,.0f}): min {min(per):,}, median "
                f"{sorted(per)[len(per) // 2]:,}, max {max(per):,}; bursts above the rate are the rate "
                "controller catching up after the process fell behind (max_lag_s), i.e. CPU starvation"
            )
        res.figures.append(f)
    return res
