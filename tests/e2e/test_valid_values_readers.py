"""Issue #24: every reader takes every valid value. Each valid case of the validity table
(tests/validity_cases.py: years 1-9999 with any zone that stays in range, which reach years 0, -1
and 10000 in UTC; fractions to microseconds; CR/LF; escapes), plus empty and huge strings, is
produced to the real broker and goes through the real Spark job and merger (started by the launcher)
and is read through the gateway: merged.csv, a filtered merged.csv, merged.parquet, /devices (every
page), /merged/tail, and `devicestream verify` exit 0 - before and after a merger restart (the
device figures come back from their snapshot)."""

from __future__ import annotations

import csv
import io
import signal

import httpx
import orjson
import polars as pl
import pytest

from contract.csv import ROW_COLUMNS
from contract.devices import DevicesResponse
from services.gateway.models import TailResponse
from tests.e2e.conftest import Stack
from tests.helpers import produce, wait_for
from tests.validity_cases import CASES, GOOD, ev

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPIC = "device-events"
BASE = 7 * 10**12
EVENT_TIME_PARSE = "%Y-%m-%dT%H:%M:%S%.fZ"
GOOD_ID = str(GOOD["eventId"]).encode()


def values() -> dict[str, tuple[bytes, int, str]]:
    """eventId -> (record value, rows, eventTime written) for each valid case, each with its own
    eventId and eventOffset (the table's share one: verify would count them as one event reused)."""
    out: dict[str, tuple[bytes, int, str]] = {}
    huge = 'H\r\n",' + "h" * 100_000
    extra = {
        "valid-empty-strings": ev(
            eventId="valid-empty-strings",
            eventOffset=BASE + 900,
            customerId="",
            eventPublisher="",
            data={"devices": [{"deviceId": "", "status": "", "measure": "", "temperature": 1}]},
        ),
        "valid-huge-strings": ev(
            eventId="valid-huge-strings",
            eventOffset=BASE + 901,
            customerId=huge,
            data={"devices": [{"deviceId": huge, "status": huge, "temperature": 2}]},
        ),
    }
    for event_id, value in extra.items():
        out[event_id] = (value, 1, "2026-11-28T03:33:11.123456Z")
    cases = [c for c in CASES if c.reason is None and c.value is not None]
    for i, c in enumerate(cases):
        assert c.value is not None and c.event_time is not None
        event_id = f"valid-{i:03d}"
        value = c.value.replace(GOOD_ID, event_id.encode())
        value = value.replace(b'"eventOffset": 10000', f'"eventOffset": {BASE + i}'.encode())
        value = value.replace(b'"eventOffset":10000', f'"eventOffset":{BASE + i}'.encode())
        if GOOD_ID not in c.value:  # a case that sets its own eventId (escapes, NUL): keep it
            event_id = orjson.loads(c.value)["eventId"]
        out[event_id] = (value, c.rows, c.event_time)
    return out


def merged_rows(body: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == list(ROW_COLUMNS)
    return rows[1:]


def event_us(times: list[str]) -> list[int | None]:
    """Epoch microseconds of eventTime strings, as the merger's readers parse them."""
    s = pl.Series(times, dtype=pl.String).str.to_datetime(EVENT_TIME_PARSE, time_unit="us", time_zone="UTC")
    return s.cast(pl.Int64).to_list()


def all_devices(base: str) -> DevicesResponse:
    """Every page of /devices, in one document (the last page's counts)."""
    after, names, doc = None, [], None
    for _ in range(1000):
        params = {"limit": "2"} | ({"after": after} if after is not None else {})
        r = httpx.get(f"{base}/devices", params=params, timeout=30)
        assert r.status_code == 200, r.text
        doc = DevicesResponse.model_validate_json(r.content)
        names += doc.devices
        after = doc.next_after
        if after is None:
            break
    assert doc is not None
    return doc.model_copy(update={"devices": names})


def check_readers(stack: Stack, want: dict[str, tuple[bytes, int, str]]) -> None:
    gw = stack.gateway
    # merged.csv: each valid event's rows, with the eventTime the table says
    rows = merged_rows(httpx.get(f"{gw}/merged.csv", timeout=60).content)
    mine = [r for r in rows if r[0] in want]
    for event_id, (_, n, event_time) in want.items():
        got = [r for r in mine if r[0] == event_id]
        assert len(got) == n, (event_id, len(got), n)
        assert all(r[4] == event_time for r in got), (event_id, {r[4] for r in got})
    # a filtered merged.csv (the query path): the same rows, the columns asked for, byte for byte
    r = httpx.get(f"{gw}/merged.csv", params={"columns": "eventId,eventTime,deviceId,customerId"}, timeout=60)
    assert r.status_code == 200, r.text
    filtered = list(csv.reader(io.StringIO(r.content.decode(), newline="")))
    assert filtered[1:] == [[x[0], x[4], x[6], x[3]] for x in rows]
    # a time filter takes every row in range, the years 0, -1 and 10000 included
    us = event_us([x[4] for x in rows])
    since = "0001-01-01T00:00:00Z"
    r = httpx.get(f"{gw}/merged.csv", params={"since": since, "columns": "eventId"}, timeout=60)
    assert r.status_code == 200, r.text
    year_one = event_us(["0001-01-01T00:00:00.000000Z"])[0]
    since_rows = list(csv.reader(io.StringIO(r.content.decode(), newline="")))[1:]
    assert since_rows == [[x[0]] for x, u in zip(rows, us, strict=True) if u is not None and u >= year_one]
    # merged.parquet: typed, eventTime a timestamp that holds every value
    r = httpx.get(f"{gw}/merged.parquet", timeout=60)
    assert r.status_code == 200, r.text
    table = pl.read_parquet(io.BytesIO(r.content))
    assert table["eventId"].to_list() == [x[0] for x in rows]
    assert table["eventTime"].cast(pl.Int64).to_list() == us
    assert table["deviceId"].fill_null("").to_list() == [x[6] for x in rows]
    # /devices: every page answers, the times a figure cannot hold counted apart
    doc = all_devices(gw)
    assert doc.rows == len(rows)
    assert sum(d.total.rows for d in doc.devices) + doc.rows_without_device == len(rows)
    beyond = sum(1 for x in rows if x[4][:1] in "-+" or x[4].startswith(("0000-", "9999-")))
    assert doc.rows_out_of_range >= beyond > 0
    # /merged/tail: whole rows, the last of merged.csv (quoted CR/LF inside fields)
    r = httpx.get(f"{gw}/merged/tail", params={"n": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    tail = TailResponse.model_validate_json(r.content).rows
    assert tail and tail == rows[len(rows) - len(tail) :]


def test_every_valid_value_through_every_reader(stack: Stack) -> None:
    want = values()
    produce(stack.bootstrap, TOPIC, [v for v, _, _ in want.values()], key=b"CI00100", max_request_size=2_000_000)
    wait_for(
        lambda: all_devices(stack.gateway).rows >= sum(n for _, n, _ in want.values()),
        300,
        "the valid events merged and counted",
        logs=stack.logs("spark", "merger"),
        interval=1,
    )
    stack.verify()
    check_readers(stack, want)
    # after a restart the figures come back from the snapshot and merged.csv, and still answer
    old = stack.kill("merger", signal.SIGKILL)
    stack.wait_restarted("merger", old)
    wait_for(
        lambda: (d := all_devices(stack.gateway)).covered_size == d.committed_size,
        120,
        "the device figures caught up after the restart",
        logs=stack.logs("merger"),
    )
    check_readers(stack, want)
    stack.verify()
