"""merged.csv through the gateway from the real merger: same bytes as the merger's, Range/206, 304,
HEAD, 416 passed through, and streamed (the gateway's memory stays flat on a large file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from contract.csv import ROW_HEADER
from tests.gateway.real_merger import Served, served_in
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration

#: About 128 MiB of merged rows (a quarter of that is the most the gateway may grow by).
LARGE_ROWS = 1_260_000


@pytest.fixture
@starts_processes
def served(tmp_path: Path) -> Iterator[Served]:
    """The real merger and the gateway (no Kafka traffic needed)."""
    yield from served_in(tmp_path)


def test_header_only_before_anything_merged(served: Served) -> None:
    r = httpx.get(f"{served.url}/merged.csv")
    assert r.status_code == 200 and r.text == ROW_HEADER + "\n"
    tail = httpx.get(f"{served.url}/merged/tail").json()
    assert tail["rows"] == []


def test_identical_range_304_head(served: Served) -> None:
    served.merge_rows(2000)
    direct = httpx.get(f"{served.merger_url}/merged.csv")
    via = httpx.get(f"{served.url}/merged.csv")
    assert via.status_code == 200
    assert via.content == direct.content == served.layout.merged_csv.read_bytes()
    for h in ("etag", "last-modified", "content-length", "accept-ranges"):
        assert via.headers[h] == direct.headers[h], h
    assert via.headers["content-type"].startswith("text/csv")

    head = httpx.head(f"{served.url}/merged.csv")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(direct.content))
    assert head.headers["etag"] == direct.headers["etag"]

    etag = via.headers["etag"]
    r304 = httpx.get(f"{served.url}/merged.csv", headers={"if-none-match": etag})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag
    # If-Modified-Since goes to the merger, whose answer comes back (it decides by ETag only)
    since = {"if-modified-since": via.headers["last-modified"]}
    by_date = httpx.get(f"{served.url}/merged.csv", headers=since)
    assert by_date.status_code == httpx.get(f"{served.merger_url}/merged.csv", headers=since).status_code

    part = httpx.get(f"{served.url}/merged.csv", headers={"range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == direct.content[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(direct.content)}"
    assert part.headers["content-length"] == "200"
    suffix = httpx.get(f"{served.url}/merged.csv", headers={"range": "bytes=-50"})
    assert suffix.status_code == 206 and suffix.content == direct.content[-50:]
    bad = httpx.get(f"{served.url}/merged.csv", headers={"range": f"bytes={len(direct.content) + 10}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(direct.content)}"

    # rows added: the old ETag no longer matches, a range from the old size fetches only what is new
    old_size = len(direct.content)
    served.merge_rows(10)
    fresh = httpx.get(f"{served.url}/merged.csv", headers={"if-none-match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    new = httpx.get(f"{served.url}/merged.csv", headers={"range": f"bytes={old_size}-"})
    assert new.status_code == 206 and new.content.count(b"\n") == 10

    tail = httpx.get(f"{served.url}/merged/tail", params={"n": 5}).json()
    assert tail["available"] and len(tail["rows"]) == 5
    assert [r[0] for r in tail["rows"]] == [f"00000001-{i:04x}-4000-8000-000000000000" for i in range(5, 10)]
    assert tail["columns"] == ROW_HEADER.split(",")


def test_large_download_is_streamed_with_flat_memory(served: Served) -> None:
    served.merge_rows(LARGE_ROWS)
    path = served.layout.merged_csv
    size = path.stat().st_size
    gw = psutil.Process(served.procs["gateway"].pid)
    rss_before = gw.memory_info().rss
    peak = rss_before
    got = 0
    with httpx.stream("GET", f"{served.url}/merged.csv", timeout=60) as r:
        assert r.status_code == 200 and int(r.headers["content-length"]) == size
        for i, chunk in enumerate(r.iter_raw()):
            got += len(chunk)
            if i % 200 == 0:
                peak = max(peak, gw.memory_info().rss)
    assert got == size
    growth_mb = (peak - rss_before) / 2**20
    assert growth_mb < size / 2**20 / 4, f"gateway RSS grew {growth_mb:.0f} MiB while streaming {size / 2**20:.0f} MiB"
