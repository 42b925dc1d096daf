"""The I/O half of GET /status: each probe asks one component within its own time budget and
never raises; failures become fields of the probe result (see health.py for what they mean)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import httpx
import orjson
from pydantic import ValidationError

from contract.kafka import PLAINTEXT, KafkaSecurity
from contract.progress import ProgressUnreadable, read_progress
from contract.validation import first_problem
from kafka_io.admin import admin_and_consumer, end_offsets_of, topic_partitions_of
from kafka_io.reachability import failure_reason
from services.gateway.health import DocT, HttpProbe, KafkaProbe, SparkProbe

log = logging.getLogger(__name__)


def describe_http_error(e: BaseException, timeout_s: float) -> str:
    if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout):
        return f"unreachable ({type(e).__name__})"
    if isinstance(e, httpx.TimeoutException | TimeoutError):
        return f"no answer within {timeout_s:g}s"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


async def probe_http(
    client: httpx.AsyncClient, component: str, url: str, timeout_s: float, model: type[DocT]
) -> HttpProbe[DocT]:
    """GET `url` (a status document, parsed with `model`) within `timeout_s`."""
    probe: HttpProbe[DocT] = HttpProbe(component=component, url=url)
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            resp = await client.get(url, timeout=timeout_s)
        probe.latency_ms = round((time.monotonic() - t0) * 1000, 1)
        if resp.status_code != 200:
            probe.error = f"answered HTTP {resp.status_code}"
            return probe
        doc = orjson.loads(resp.content)
        if not isinstance(doc, dict):
            probe.error = "status is not a JSON object"
            return probe
        try:
            probe.doc = model.model_validate(doc)
        except ValidationError as e:
            probe.error = f"status is not a {model.__name__} document: {first_problem(e)}"
            return probe
        probe.reachable = True
    except (httpx.HTTPError, TimeoutError, orjson.JSONDecodeError) as e:
        probe.error = describe_http_error(e, timeout_s)
        log.debug("probe failed", extra={"component": component, "url": url, "error": probe.error})
    return probe


def _pid_alive(pid: int | None) -> bool | None:
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_spark(path: Path, check_pid: bool) -> SparkProbe:
    probe = SparkProbe(path=str(path))
    try:
        doc = read_progress(path)
    except OSError as e:
        probe.error = f"{type(e).__name__}: {e}"
        return probe
    except ProgressUnreadable as e:
        probe.error = str(e)
        return probe
    if doc is None:
        return probe
    probe.doc = doc
    if check_pid and doc.state in ("starting", "running"):
        probe.pid_alive = _pid_alive(doc.pid)
    return probe


async def probe_spark(path: Path, check_pid: bool, timeout_s: float) -> SparkProbe:
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(_read_spark, path, check_pid)
    except TimeoutError:
        return SparkProbe(path=str(path), error=f"reading took longer than {timeout_s:g}s")


async def probe_kafka(bootstrap: str, topic: str, timeout_s: float, security: KafkaSecurity = PLAINTEXT) -> KafkaProbe:
    """Broker count and the topic's partitions (admin client), end offsets (consumer without a
    group). Both clients (kafka_io.admin.admin_and_consumer) are made for this call and closed before it returns."""
    probe = KafkaProbe(bootstrap=bootstrap, topic=topic)
    if not bootstrap:
        probe.error = "KAFKA_BOOTSTRAP_SERVERS is not set"
        return probe
    t0 = time.monotonic()
    ms = max(500, int(timeout_s * 1000))
    options = {"request_timeout_ms": ms, "client_id": "gateway-status"}
    try:
        # the clients close after the deadline's scope: a close cannot turn an answer into a timeout
        async with contextlib.AsyncExitStack() as clients, asyncio.timeout(timeout_s):
            admin, consumer = await clients.enter_async_context(admin_and_consumer(bootstrap, security, **options))
            cluster = await admin.describe_cluster()
            probe.brokers = len(cluster.get("brokers", []))
            probe.reachable = True
            parts = await topic_partitions_of(admin, topic)
            probe.topic_exists = bool(parts)
            probe.partitions = len(parts)
            if parts:
                probe.end_offsets = await end_offsets_of(consumer, topic, parts)
    except TimeoutError:
        probe.error = f"no answer within {timeout_s:g}s"
    except Exception as e:  # aiokafka raises many kinds; any of them means "not usable now"
        # the cause (refused, wrong credentials, untrusted CA...), which aiokafka itself only logs
        probe.error = await failure_reason(e, bootstrap, security, min(timeout_s, 2.0))
    if probe.error and probe.reachable:
        # metadata worked but offsets did not: report what we know, not "unreachable"
        log.info("kafka partially answered", extra={"error": probe.error})
    probe.latency_ms = round((time.monotonic() - t0) * 1000, 1)
    return probe
