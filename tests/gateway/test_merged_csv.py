"""merged.csv through the gateway: same bytes as the merger's, Range/206, 304, HEAD, 416
passed through, and streamed (the gateway's memory stays flat on a large file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from contract.csv import ROW_HEADER
from tests.gateway.conftest import Stack, make_stack

pytestmark = pytest.mark.integration


def write_rows(path: Path, n: int, start: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        if start == 0:
            f.write(ROW_HEADER + "\n")
        for i in range(start, start + n):
            f.write(f"id-{i},{10000 + i},device,CI00100,2026-11-28T03:33:11.123456Z,0,D001,{i % 31},C,SUCCESS\n")


@pytest.fixture
def served(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    """Merger stand-in + gateway only (no Kafka traffic needed)."""
    s = make_stack(tmp_path, kafka)
    try:
        s.start("merger")
        s.start("gateway")
        yield s
    finally:
        s.stop_all()


def test_header_only_before_anything_merged(served: Stack) -> None:
    r = httpx.get(f"{served.url}/merged.csv")
    assert r.status_code == 200 and r.text == ROW_HEADER + "\n"
    tail = httpx.get(f"{served.url}/merged/tail").json()
    assert tail["rows"] == []


def test_identical_range_304_head(served: Stack) -> None:
    write_rows(served.layout.merged_csv, 2000)
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
    r304 = httpx.get(f"{served.url}/merged.csv", headers={"if-modified-since": via.headers["last-modified"]})
    assert r304.status_code == 304

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
    write_rows(served.layout.merged_csv, 10, start=2000)
    fresh = httpx.get(f"{served.url}/merged.csv", headers={"if-none-match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    new = httpx.get(f"{served.url}/merged.csv", headers={"range": f"bytes={old_size}-"})
    assert new.status_code == 206 and new.content.count(b"\n") == 10

    tail = httpx.get(f"{served.url}/merged/tail", params={"n": 5}).json()
    assert tail["available"] and len(tail["rows"]) == 5
    assert [r[0] for r in tail["rows"]] == [f"id-{i}" for i in range(2005, 2010)]
    assert tail["columns"] == ROW_HEADER.split(",")


def test_large_download_is_streamed_with_flat_memory(served: Stack) -> None:
    path = served.layout.merged_csv
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"x" * 1023 + b"\n"
    with path.open("wb") as f:
        f.write(ROW_HEADER.encode() + b"\n")
        block = line * 1024  # 1 MiB
        for _ in range(256):
            f.write(block)
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
    assert growth_mb < 64, f"gateway RSS grew {growth_mb:.0f} MiB while streaming {size / 2**20:.0f} MiB"
