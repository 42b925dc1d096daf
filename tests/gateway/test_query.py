"""Querying the merged data through the real gateway in front of the real merger: filtered merged.csv
and merged.parquet equal the merger's own answers, 422 names the field, the header alone before the
first row, and the device figures forwarded."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from contract.csv import ROW_HEADER
from tests.documents import devices
from tests.gateway.real_merger import Served, served_in
from tests.merger.batches import HEADER_LINE, batch_rows, write_batch
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration


@pytest.fixture
@starts_processes
def served(tmp_path: Path) -> Iterator[Served]:
    yield from served_in(tmp_path)


def test_filtered_downloads_through_the_gateway(served: Served) -> None:
    r = httpx.get(f"{served.url}/merged.csv", params={"deviceId": "D001"})
    assert r.status_code == 200 and r.text == ROW_HEADER + "\n"  # before the first row: the header
    assert httpx.get(f"{served.url}/merged.csv").text == ROW_HEADER + "\n"
    assert devices(served.url).devices == []

    rnd = random.Random(5)
    for b in range(3):
        write_batch(served.rows_dir, b, HEADER_LINE + batch_rows(b, 300, rnd))
    served.merged_up_to(2)

    queries = [
        [("deviceId", "D001"), ("deviceId", "D004")],
        [("status", "ERROR"), ("columns", "eventTime,deviceId,temperature")],
        [("since", "2026-11-28T03:00:05Z"), ("until", "2026-11-28T03:00:10Z"), ("customerId", "CI00105")],
        [("limit", "7")],
        [("deviceId", "D999")],
    ]
    for params in queries:
        direct = httpx.get(f"{served.merger_url}/merged.csv", params=params)
        via = httpx.get(f"{served.url}/merged.csv", params=params)
        assert via.status_code == direct.status_code == 200, (params, via.text)
        assert via.content == direct.content, params
        assert via.headers["etag"] == direct.headers["etag"]
        pq_direct = httpx.get(f"{served.merger_url}/merged.parquet", params=params)
        pq_via = httpx.get(f"{served.url}/merged.parquet", params=params)
        assert pq_via.status_code == 200 and pq_via.headers["content-type"] == "application/vnd.apache.parquet"
        assert pl.read_parquet(io.BytesIO(pq_via.content)).equals(pl.read_parquet(io.BytesIO(pq_direct.content)))
    assert via.content == ROW_HEADER.encode() + b"\n"  # a filter that matches nothing: the header

    # without filters: exactly as before (Range, ETag, 304)
    whole = httpx.get(f"{served.url}/merged.csv")
    assert whole.content == httpx.get(f"{served.merger_url}/merged.csv").content
    part = httpx.get(f"{served.url}/merged.csv", headers={"range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole.content[:10]
    etag = whole.headers["etag"]
    assert httpx.get(f"{served.url}/merged.csv", headers={"if-none-match": etag}).status_code == 304

    bad = httpx.get(f"{served.url}/merged.csv", params={"columns": "nope"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["query", "columns"]  # [.., 0]: which value
    bad = httpx.get(f"{served.url}/merged.parquet", params={"since": "soon"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]

    # the gateway forwards the merger's figures (the window ends at each answer's now)
    assert devices(served.url).model_copy(update={"window_end": None}) == devices(served.merger_url).model_copy(
        update={"window_end": None}
    )
    assert [d.deviceId for d in devices(served.url, "D002").devices] == ["D002"]
    assert httpx.get(f"{served.url}/devices/D999").status_code == 404
    assert httpx.get(f"{served.url}/devices/a%2Fb").status_code == 404


def test_merger_down_is_a_clear_503(served: Served) -> None:
    served.stop("merger")
    for path in ("/devices", "/merged.parquet", "/merged.csv?deviceId=D001"):
        r = httpx.get(f"{served.url}{path}")
        assert r.status_code == 503 and r.json()["component"] == "merger", path
