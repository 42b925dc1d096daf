"""Filtered merged.csv and merged.parquet from a real merger process, each filter checked against a
reference computed independently (the csv module over the same committed merged.csv)."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from contract.csv import ROW_COLUMNS, ROW_HEADER
from services.merger.errors import InvalidQueryError
from services.merger.query import build_query
from tests.documents import merger_status
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, write_batch

T0 = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
N_BATCHES, ROWS_PER_BATCH = 6, 400


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def varied_rows(batch_id: int, n: int, rnd: random.Random) -> str:
    """Rows over an hour of eventTime, 5 devices (and some without a deviceId), 21 customers, every status."""
    out = []
    for i in range(n):
        t = T0 + timedelta(microseconds=rnd.randrange(3600 * 10**6))
        device = rnd.choice(["D001", "D002", "D003", "D004", "D005", ""])
        status = rnd.choice(["SUCCESS", "ERROR", "STANDBY", ""])
        out.append(
            f"{batch_id:08x}-{i:04x}-4000-8000-000000000000,{10_000 + batch_id * 10_000 + i},device,"
            f"CI{100 + rnd.randrange(21):05d},{iso(t)},0,{device},{rnd.randrange(31)},C,{status}\n"
        )
    return "".join(out)


def reference(text: str, *, since=None, until=None, devices=(), customers=(), statuses=(), columns=(), limit=None):
    """The expected answer, in plain Python: list of row dicts (values as written, '' for empty)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    out = []
    for r in rows:
        t = datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        if devices and r["deviceId"] not in devices:
            continue
        if customers and r["customerId"] not in customers:
            continue
        if statuses and r["status"] not in statuses:
            continue
        out.append({c: r[c] for c in (columns or ROW_COLUMNS)})
    return out if limit is None else out[:limit]


def parse_csv(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(body.decode()))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


@pytest.fixture
def served(merger_runner, rows_dir):
    rnd = random.Random(7)
    with merger_runner.process() as proc:
        url = merger_runner.url
        for b in range(N_BATCHES):
            write_batch(rows_dir, b, HEADER_LINE + varied_rows(b, ROWS_PER_BATCH, rnd))
        wait_for(
            lambda: merger_status(url).last_batch_id == N_BATCHES - 1,
            30,
            "all batches merged",
            logs=[proc.log_file],
        )
        text = (merger_runner.data_dir / "merger" / "merged.csv").read_text()
        yield url, text


CASES = [
    ({"limit": 0}, {"limit": 0}),
    ({"since": "2026-11-28T03:10:00Z"}, {"since": T0 + timedelta(minutes=10)}),
    ({"until": "2026-11-28T03:10:00Z"}, {"until": T0 + timedelta(minutes=10)}),
    (
        {"since": "2026-11-28T03:10:00+00:00", "until": "2026-11-28T03:20:00"},  # naive: UTC
        {"since": T0 + timedelta(minutes=10), "until": T0 + timedelta(minutes=20)},
    ),
    ({"since": "2026-11-28T04:10:00+01:00"}, {"since": T0 + timedelta(minutes=10)}),  # another zone
    ({"deviceId": "D002"}, {"devices": ("D002",)}),
    ({"deviceId": ["D002", "D004"]}, {"devices": ("D002", "D004")}),
    ({"customerId": ["CI00101", "CI00120"]}, {"customers": ("CI00101", "CI00120")}),
    ({"status": "ERROR"}, {"statuses": ("ERROR",)}),
    ({"status": ["ERROR", ""]}, {"statuses": ("ERROR", "")}),  # "" = no status
    ({"columns": "eventTime,deviceId,temperature"}, {"columns": ("eventTime", "deviceId", "temperature")}),
    ({"columns": ["status", "eventId"]}, {"columns": ("status", "eventId")}),
    ({"limit": 17}, {"limit": 17}),
    (
        {"deviceId": "D001", "status": "ERROR", "since": "2026-11-28T03:30:00Z", "columns": "eventId,status"},
        {
            "devices": ("D001",),
            "statuses": ("ERROR",),
            "since": T0 + timedelta(minutes=30),
            "columns": ("eventId", "status"),
        },
    ),
    ({"deviceId": "D999"}, {"devices": ("D999",)}),  # matches nothing: the header alone
]


def each_case(url: str, text: str, path: str):
    """(params, reference arguments, expected rows, the 200 answer) for every case."""
    for params, ref_args in CASES:
        r = httpx.get(f"{url}{path}", params=params, timeout=30)
        assert r.status_code == 200, (params, r.text)
        yield params, ref_args, reference(text, **ref_args), r


@pytest.mark.integration
def test_each_filter_matches_the_reference(served):
    for params, ref_args, expected, r in each_case(*served, "/merged.csv"):
        assert r.headers["content-type"].startswith("text/csv")
        header, got = parse_csv(r.content)
        assert header == list(ref_args.get("columns") or ROW_COLUMNS), params
        assert got == expected, params
        if not expected:
            assert r.content.decode().strip() == ",".join(header)


@pytest.mark.integration
def test_parquet_equals_the_csv_rows_typed(served):
    url, text = served
    for params, ref_args, expected, r in each_case(url, text, "/merged.parquet"):
        assert r.headers["content-type"] == "application/vnd.apache.parquet"
        df = pl.read_parquet(io.BytesIO(r.content))
        cols = list(ref_args.get("columns") or ROW_COLUMNS)
        assert df.columns == cols
        types = {"eventOffset": pl.Int64, "deviceIndex": pl.Int32, "temperature": pl.Int32}
        for c in cols:
            assert df.schema[c] == types.get(c, pl.Datetime("us", "UTC") if c == "eventTime" else pl.String), c
        # back to text, as written in merged.csv
        as_text = df.with_columns(
            [pl.col(c).cast(pl.String) for c in cols if c in types]
            + [pl.col("eventTime").dt.strftime("%Y-%m-%dT%H:%M:%S.%6fZ")] * ("eventTime" in cols)
        ).fill_null("")
        assert as_text.to_dicts() == expected, params

    # pandas (pyarrow engine) and pyarrow read it too, with the same rows and types
    full = httpx.get(f"{url}/merged.parquet", timeout=30).content
    pdf = pd.read_parquet(io.BytesIO(full))
    assert len(pdf) == N_BATCHES * ROWS_PER_BATCH
    assert str(pdf["eventTime"].dtype) == "datetime64[us, UTC]"
    assert str(pdf["temperature"].dtype) == "int32" and str(pdf["eventOffset"].dtype) == "int64"
    assert pdf["eventOffset"].tolist() == [int(r["eventOffset"]) for r in reference(text)]
    assert pq.read_table(io.BytesIO(full)).num_rows == len(pdf)


@pytest.mark.integration
def test_filtered_answers_have_validators_and_head(served, merger_runner):
    url, _ = served
    params = {"deviceId": "D003"}
    first = httpx.get(f"{url}/merged.csv", params=params)
    etag = first.headers["etag"]
    assert httpx.get(f"{url}/merged.csv", params=params, headers={"If-None-Match": etag}).status_code == 304
    other = httpx.get(f"{url}/merged.csv", params={"deviceId": "D004"})
    assert other.headers["etag"] != etag
    head = httpx.head(f"{url}/merged.parquet", params=params)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"]
    # nothing is left behind in the answers' temp folder
    tmp = merger_runner.data_dir / "merger" / "query-tmp"
    wait_for(lambda: not any(tmp.iterdir()), 10, "the answers' temp files removed")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"columns": "eventId,nope"}, "columns"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"limit": str(2**40)}, "limit"),
        ({"since": "1764300000"}, "since"),  # a number is not a time
        ({"columns": ""}, "columns"),
    ],
)
@pytest.mark.integration
def test_bad_filters_get_422_naming_the_field(merger_runner, params, field):
    with merger_runner.process():
        for path in ("/merged.csv", "/merged.parquet"):
            r = httpx.get(f"{merger_runner.url}{path}", params=params)
            assert r.status_code == 422, (path, params, r.text)
            assert r.json()["detail"][0]["loc"][:2] == ["query", field], r.json()


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-28T04:00:00Z", "until": "2026-11-28T03:00:00Z"},  # an empty range
        {"since": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC: from the beginning
        {"until": "9999-12-31T23:59:59-23:59"},  # after year 9999 in UTC: to the end
    ],
)
@pytest.mark.integration
def test_edge_filters_are_taken(merger_runner, params):
    with merger_runner.process():
        r = httpx.get(f"{merger_runner.url}/merged.csv", params={**params, "columns": "eventId"})
        assert r.status_code == 200 and r.text == "eventId\n", r.text


@pytest.mark.integration
def test_before_the_first_row_filters_answer_the_header_and_an_empty_parquet(merger_runner):
    with merger_runner.process():
        url = merger_runner.url
        r = httpx.get(f"{url}/merged.csv", params={"deviceId": "D001", "columns": "eventId,deviceId"})
        assert r.status_code == 200 and r.text == "eventId,deviceId\n"
        whole = httpx.get(f"{url}/merged.csv")
        assert whole.status_code == 200 and whole.text == ROW_HEADER + "\n"
        df = pl.read_parquet(io.BytesIO(httpx.get(f"{url}/merged.parquet").content))
        assert df.height == 0 and df.columns == list(ROW_COLUMNS)


def test_build_query_normalises_and_rejects():
    q = build_query(columns=["eventId, deviceId", "eventId"], device_ids=["D1", "D1"], since=datetime(2026, 1, 1))
    assert q.columns == ("eventId", "deviceId") and q.device_ids == ("D1",)
    assert q.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert build_query().is_unfiltered and not q.is_unfiltered
    with pytest.raises(InvalidQueryError) as e:
        build_query(columns=["x"])
    assert e.value.field == "columns"


@pytest.mark.integration
def test_queries_during_merging_see_whole_committed_batches(merger_runner, rows_dir):
    """While batches keep being merged, every filtered answer holds exactly the rows of a prefix of
    whole batches (never a row of an uncommitted append), and DuckDB reads the Parquet too."""
    rnd = random.Random(3)
    n_batches = 60
    texts = [varied_rows(b, rnd.randint(100, 300), rnd) for b in range(n_batches)]
    prefix_counts = {0}
    total = 0
    for t in texts:
        total += sum(1 for line in t.splitlines() if line.split(",")[9] == "ERROR")
        prefix_counts.add(total)
    with merger_runner.process(MERGER_MAX_GROUP_BATCHES="1") as proc:
        url = merger_runner.url
        seen = set()
        for b, t in enumerate(texts):
            write_batch(rows_dir, b, HEADER_LINE + t)
            r = httpx.get(f"{url}/merged.csv", params={"status": "ERROR", "columns": "status"}, timeout=30)
            n = r.content.count(b"\n") - 1
            assert n in prefix_counts, f"{n} ERROR rows is no prefix of whole batches"
            seen.add(n)
        wait_for(
            lambda: merger_status(url).last_batch_id == n_batches - 1,
            30,
            "all merged",
            logs=[proc.log_file],
        )
        final = httpx.get(f"{url}/merged.csv", params={"status": "ERROR", "columns": "status"}).content
        assert final.count(b"\n") - 1 == total
        path = merger_runner.data_dir / "answer.parquet"
        path.write_bytes(httpx.get(f"{url}/merged.parquet", params={"status": "ERROR"}, timeout=30).content)
        count, kind = duckdb.sql(
            f"select count(*), typeof(any_value(eventTime)) from read_parquet('{path}')"
        ).fetchone()
        assert count == total and kind == "TIMESTAMP WITH TIME ZONE"
    assert len(seen) > 1  # the answers did move along with the merging


@pytest.mark.integration
def test_temp_answers_left_by_a_crash_are_removed_at_start(merger_runner):
    tmp = merger_runner.data_dir / "merger" / "query-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "0123abcd.csv").write_bytes(b"eventId\n" * 1000)  # an answer a SIGKILLed merger was sending
    (tmp / "4567ef.parquet").write_bytes(b"PAR1")
    with merger_runner.process():
        assert list(tmp.iterdir()) == []


@pytest.mark.integration
def test_queries_while_compaction_and_retention_remove_files_all_answer(merger_runner, rows_dir):
    """Small segments, compacted with their CSV removed, and a retention bound: files go while
    filtered answers are asked. Every answer is a 200 (its header line or Parquet magic first), and
    no pinned file is left once the queries are done. (A removal in the middle of a read is rare
    here: tests/merger/test_compaction.py makes it happen on files, deterministically.)"""
    rnd = random.Random(5)
    n_batches = 40
    env = {
        "MERGER_MAX_GROUP_BATCHES": "1",
        "MERGER_SEGMENT_BYTES": "20000",
        "MERGER_KEEP_SEGMENT_CSV": "false",
        "MERGER_RETAIN_BYTES": "60000",
    }
    with merger_runner.process(**env) as proc:
        url = merger_runner.url
        answers = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for b in range(n_batches):
                write_batch(rows_dir, b, HEADER_LINE + varied_rows(b, rnd.randint(100, 300), rnd))
                for fmt, params in (("csv", {"status": "ERROR"}), ("parquet", {"deviceId": "D001"})):
                    r = client.get(f"/merged.{fmt}", params=params)
                    answers.append((b, fmt, r.status_code, r.content[:8]))
            wait_for(lambda: merger_status(url).last_batch_id == n_batches - 1, 30, "all merged", logs=[proc.log_file])
            assert merger_status(url).segments_retired > 0

            def segment_figures() -> dict[str, float]:
                lines = client.get("/metrics").text.splitlines()
                return {k: float(v) for k, v in (ln.rsplit(" ", 1) for ln in lines if ln.startswith("merger_segments"))}

            wait_for(
                lambda: segment_figures().get('merger_segments{compacted="false"}') == 0,
                30,
                "every closed segment compacted (its gauge)",
                logs=[proc.log_file],
            )
            figures = segment_figures()
            assert figures['merger_segments{compacted="true"}'] > 0
            assert figures["merger_segments_retired_total"] == merger_status(url).segments_retired
        bad = [(b, fmt, code) for b, fmt, code, head in answers if code != 200]
        assert not bad, f"answers that were not 200: {bad}"
        assert all(head.startswith(b"eventId," if fmt == "csv" else b"PAR1") for _, fmt, _, head in answers)
        tmp = merger_runner.data_dir / "merger" / "query-tmp"
        wait_for(lambda: not list(tmp.iterdir()), 10, "the answers' files and pins removed", logs=[proc.log_file])
