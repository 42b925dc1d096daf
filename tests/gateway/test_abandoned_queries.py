"""Issue #24: readers that a hostile client cannot starve. The real merger with a merged.csv big
enough that each filtered query takes seconds, the real gateway in front of it (loopback only):

- 200 filtered downloads whose clients leave after 1 s leave /status, /devices and a small query
  answering within 2 s; the abandoned queries stop (not run to the end) and leave no temp answer;
- past the merger's query queue, the answer is 503 with Retry-After, passed through by the gateway;
- a Range header with thousands of digits (and other malformed ones) is a 416 or ignored, never 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract.pipeline_status import PipelineStatus
from tests.documents import devices
from tests.gateway.real_merger import Served, served_in
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, rows, write_batch
from tests.tiers import starts_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ABANDONED = 200
BOUND_S = 2.0  # issue #24: "... answering within 2 s"
BATCHES, ROWS_PER_BATCH = 25, 100_000
#: A query that reads every row (eventTime parsed for each) and finds few.
SLOW_QUERY = "/merged.csv?since=2026-11-28T03:33:11Z&deviceId=D004&customerId=CI00101"


@pytest.fixture(scope="module")
@starts_processes
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    gen = served_in(tmp_path_factory.mktemp("abandoned"), MERGER_QUERY_QUEUE_MAX="8", MERGER_QUERIES_AT_ONCE="2")
    served = next(gen)
    try:
        for b in range(BATCHES):
            write_batch(served.rows_dir, b, HEADER_LINE + rows(b, ROWS_PER_BATCH))
        served.merged_up_to(BATCHES - 1)
        yield served
    finally:
        gen.close()


def metric(served: Served, name: str) -> float:
    for line in httpx.get(f"{served.merger_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def tmp_answers(served: Served) -> list[Path]:
    return list((served.rows_dir.parent.parent / "merger" / "query-tmp").glob("*"))


async def abandon(port: int, path: str, after_s: float) -> bytes:
    """Ask for `path` on raw loopback socket, read what comes for `after_s`, then leave."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    got = b""
    try:
        async with asyncio.timeout(after_s):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        pass
    writer.close()
    return got


def timed_get(url: str) -> tuple[httpx.Response, float]:
    """The answer's status and first bytes, and how long they took (the rest is not waited for)."""
    t0 = time.monotonic()
    with httpx.stream("GET", url, timeout=30) as r:
        first = next(r.iter_raw(), b"")
        took = time.monotonic() - t0
    return httpx.Response(r.status_code, headers=r.headers, content=first), took


def test_abandoned_queries_stop_and_leave_the_readers_answering(big: Served) -> None:
    port = int(big.url.rsplit(":", 1)[1])
    t0 = time.monotonic()
    httpx.get(f"{big.url}{SLOW_QUERY}", timeout=120).raise_for_status()
    one_query_s = time.monotonic() - t0
    print(f"one slow query: {one_query_s:.2f} s")

    async def wave() -> list[bytes]:
        return await asyncio.gather(*(abandon(port, SLOW_QUERY, 1.0) for _ in range(ABANDONED)))

    answers = asyncio.run(wave())
    statuses = [a.split(b" ", 2)[1] if a.startswith(b"HTTP/1.1 ") else b"-" for a in answers]
    print({s: statuses.count(s) for s in set(statuses)})
    # an answer that came within the second is a 200 or a 503 with Retry-After (gateway or merger)
    assert set(statuses) <= {b"200", b"503", b"-"}, set(statuses)
    assert all(b"retry-after" in a.lower() for a in answers if a.startswith(b"HTTP/1.1 503"))

    # right after they left, every reader answers within the bound
    for path in ("/status", "/devices?limit=5", "/merged.csv?deviceId=D001&limit=5", "/merged.csv"):
        r, took = timed_get(f"{big.url}{path}")
        print(f"{path}: {r.status_code} in {took:.2f} s")
        if path == "/status":  # down (this stack has no Kafka, no generator, no Spark), merger fine
            doc = PipelineStatus.model_validate_json(r.content)
            # (the fixture's rows are old, so the freshness rule may speak: it is about the data's age,
            # not about the merger answering)
            merger = [r for r in doc.reasons if r.startswith("merger") and not r.startswith("merger: freshness")]
            assert not merger, doc.reasons
        else:
            assert r.status_code == 200, (path, r.text[:300])
        assert took < BOUND_S, (path, took)
    # the abandoned queries stopped (a query took {one_query_s}; ten of them run to the end would
    # keep the merger busy for 5 times that): nothing runs or waits, no temp answer is left
    logs = big.logs()
    wait_for(
        lambda: metric(big, "merger_queries_running") == 0 and metric(big, "merger_queries_waiting") == 0,
        max(10.0, 2 * one_query_s),
        "the abandoned queries to stop",
        logs=logs,
    )
    wait_for(lambda: not tmp_answers(big), 10, "no temp answer left", logs=logs)
    assert "query stopped: its reader has gone" in big.log("merger").read_text()


def test_past_the_queue_the_answer_is_503_with_retry_after(big: Served) -> None:
    """Queries whose clients stay (without reading) fill the places and the queue; the next get
    503 with Retry-After from the merger, passed on by the gateway; once they leave, queries run."""
    port = int(big.url.rsplit(":", 1)[1])

    async def crowd() -> list[bytes]:
        return await asyncio.gather(*(abandon(port, f"{SLOW_QUERY}&limit={i}", 1.5) for i in range(20)))

    answers = asyncio.run(crowd())
    busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert busy, [a[:40] for a in answers]
    assert all(b"retry-after: 2" in a.lower() and b"MERGER_QUERY_QUEUE_MAX" in a for a in busy)
    wait_for(lambda: metric(big, "merger_queries_running") == 0, 30, "the places to free")
    assert httpx.get(f"{big.url}/merged.csv?deviceId=D001&limit=5", timeout=30).status_code == 200


@pytest.mark.parametrize(
    ("range_header", "status"),
    [
        (b"bytes=0-" + b"9" * 5000, 206),  # a last-pos past the end is the end (RFC 9110 14.1.1)
        (b"bytes=-" + b"9" * 5000, 206),  # a suffix longer than the file: all of it
        (b"bytes=" + b"9" * 5000 + b"-", 416),
        (b"bytes=" + b"9" * 5000 + b"-1", 200),  # last < first: invalid, ignored
        (b"bytes=1-2,3-4", 200),  # several ranges: served whole
        ("bytes=\u0661-2".encode(), 200),  # a non-ASCII digit
        (b"bytes=a-b", 200),
        (b"pages=1-2", 200),
    ],
)
def test_malformed_ranges_are_416_or_ignored_never_500(big: Served, range_header: bytes, status: int) -> None:
    size = devices(big.merger_url).committed_size
    for base in (big.merger_url, big.url):
        with httpx.stream("GET", f"{base}/merged.csv", headers={"range": range_header}, timeout=60) as r:
            assert r.status_code == status, (base, r.status_code)
            if status == 206:
                assert r.headers["content-range"].endswith(f"/{size}")
            if status == 416:
                assert r.headers["content-range"] == f"bytes */{size}"
