"""verify's fast path for records in the generator's own form (devicestream.validity_fast) against
the full check (devicestream.validity): whenever the fast path answers, the full check accepts the
record and gives the same CSV lines; the generator's events take the fast path; odd records fall
back. The last test runs both through a real topic scan."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from devicestream.validity import Invalid, expected_rows
from devicestream.validity_fast import canonical_csv
from devicestream.verify import scan_topic
from devicestream.verify_chunks import read_text
from services.generator.events import EventClock, EventEncoder
from tests.conftest import Broker
from tests.helpers import produce
from tests.validity_cases import CASES, GOOD, Case

SUFFIX = b",2,41\r\n"


def _full_csv(value: bytes | None) -> tuple[bytes, int] | None:
    """The full check's rows as the scan writes them (None: rejected)."""
    try:
        rows = expected_rows(value)
    except Invalid:
        return None
    out = io.StringIO(newline="")
    csv.writer(out).writerows([*r, 2, 41] for r in rows)
    return out.getvalue().encode("utf-8", errors="replace"), len(rows)  # a lone surrogate: "?", as the job writes it


def _agree(value: bytes | None) -> bool:
    """Whether the fast path answered; when it did, the full check must give the same."""
    fast = canonical_csv(value, SUFFIX)
    if fast is None:
        return False
    lines, n, event_offset = fast
    assert _full_csv(value) == (lines, n)
    assert event_offset == json.loads(value or b"")["eventOffset"]
    return True


def _compact(value: bytes | None) -> bytes | None:
    """A spaced json.dumps document written compact, as the generator writes (strings keep theirs)."""
    return value if value is None else value.replace(b'": ', b'":').replace(b', "', b',"').replace(b", {", b",{")


def _doc(**changes: object) -> dict:
    doc = json.loads(json.dumps(GOOD))
    doc.update(changes)
    return doc


def _dumps(doc: object, **kw: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), **kw).encode()  # type: ignore[arg-type]


def _reading(**changes: object) -> bytes:
    r = {"deviceId": "D002", "temperature": 5, "measure": "C", "status": "ERROR", **changes}
    return _dumps(_doc(data={"devices": [r]}))


def test_the_generators_events_take_the_fast_path() -> None:
    enc, clock, rng = EventEncoder(), EventClock(), random.Random(5)
    counts = set()
    for i in range(3000):
        _, value = enc.encode(rng, clock.now(), 10_000 + i)
        assert _agree(value), value
        counts.add(canonical_csv(value)[1])  # type: ignore[index]
    assert counts == {0, 1, 2, 3}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_shared_table_spaced_and_compact(case: Case) -> None:
    for value in (case.value, _compact(case.value)):
        if _agree(value):
            assert case.reason is None  # the fast path never accepts what the job rejects


FAST = {
    "as GOOD": _dumps(GOOD),
    "empty strings": _dumps(_doc(eventId="", eventPublisher="", customerId="")),
    "nulls in a reading": _reading(deviceId=None, status=None),
    "empty reading strings": _reading(deviceId="", measure="", status=""),
    "temperature at 32-bit bounds": _dumps(_doc(data={"devices": [{**GOOD["data"]["devices"][0], "temperature": t}
                                                                   for t in (-(2**31), 2**31 - 1, 0, -7)]})),
    "eventOffset at 64-bit bounds": _dumps(_doc(eventOffset=2**63 - 1)),
    "eventOffset lowest": _dumps(_doc(eventOffset=-(2**63))),
    "eventOffset 0": _dumps(_doc(eventOffset=0)),
    "printable ASCII": _dumps(_doc(eventId="".join(chr(c) for c in range(32, 127) if chr(c) not in '",\\'))),
    "braces in strings": _dumps(_doc(eventId="}]}{x:[{", customerId="a:b")),
    "braces in a reading": _reading(deviceId="}]}{", status="{null}"),
    "huge field": _dumps(_doc(eventId="x" * 1_000_000)),
    "many readings": _dumps(_doc(data={"devices": [GOOD["data"]["devices"][0]] * 200})),
    "leap day": _dumps(_doc(eventTime="2024-02-29T23:59:59.999999Z")),
    "year 0": _dumps(_doc(eventTime="0000-01-01T00:00:00.000000Z")),
}  # fmt: skip
SLOW = {
    "spaces": json.dumps(GOOD).encode(),
    "escape": _dumps(_doc(eventId='a"b')),
    "escaped slash": _dumps(_doc(eventId="a/b")).replace(b"a/b", b"a\\/b"),
    "unicode": _dumps(_doc(customerId="Ü"), ensure_ascii=False),
    "unicode escape": _dumps(_doc(customerId="Ü")),
    "control character": _dumps(_doc(eventId="a\tb"), ensure_ascii=False).replace(b"\\t", b"\t"),
    "DEL": _dumps(_doc(eventId="a\x7fb")),
    "lone surrogates in row fields": _dumps(_doc(eventId="a\ud800b", customerId="\udc00")),
    "comma in a string": _dumps(_doc(eventId="a,b")),
    "comma in a reading": _reading(status="OK, fine"),
    "extra field": _dumps(_doc(note=1)),
    "extra reading field": _reading(battery=3),
    "reordered fields": _dumps({"eventOffset": 1, **_doc()}),
    "reordered reading": _dumps(_doc(data={"devices": [{"temperature": 1, "deviceId": "D1", "measure": "C",
                                                        "status": None}]})),
    "eventOffset 2^63": _dumps(_doc(eventOffset=2**63)),
    "eventOffset 19 nines": _dumps(_doc(eventOffset=9_999_999_999_999_999_999)),
    "eventOffset -0": _dumps(_doc(eventOffset=0)).replace(b'"eventOffset":0', b'"eventOffset":-0'),
    "eventOffset leading zero": _dumps(_doc()).replace(b'"eventOffset":10000', b'"eventOffset":010000'),
    "eventOffset float": _dumps(_doc(eventOffset=1.5)),
    "eventOffset 1e3": _dumps(_doc()).replace(b'"eventOffset":10000', b'"eventOffset":1e3'),
    "temperature 2^31": _reading(temperature=2**31),
    "temperature 10 nines": _reading(temperature=9_999_999_999),
    "temperature float": _reading(temperature=21.0),
    "temperature null": _reading(temperature=None),
    "measure null": _reading(measure=None),
    "eventId null": _dumps(_doc(eventId=None)),
    "data null": _dumps(_doc(data=None)),
    "february 30": _dumps(_doc(eventTime="2026-02-30T00:00:00.000000Z")),
    "hour 24": _dumps(_doc(eventTime="2026-11-28T24:00:00.000000Z")),
    "3 fraction digits": _dumps(_doc(eventTime="2026-11-28T03:33:11.123Z")),
    "zone +00:00": _dumps(_doc(eventTime="2026-11-28T03:33:11.123456+00:00")),
    "final newline in eventTime": _dumps(_doc(eventTime="2026-11-28T03:33:11.123456Z\n")),
    "trailing newline": _dumps(GOOD) + b"\n",
    "duplicate key": _dumps(GOOD)[:-1] + b',"eventTime":"2026-11-28T03:33:11.123456Z"}',
    "not UTF-8": _dumps(GOOD).replace(b"device", b"d\xffvice"),
    "empty": b"",
    "none": None,
}  # fmt: skip


@pytest.mark.parametrize("name", list(FAST))
def test_odd_records_in_the_generators_form_take_the_fast_path(name: str) -> None:
    assert _agree(FAST[name])


@pytest.mark.parametrize("name", list(SLOW))
def test_anything_else_takes_the_full_check(name: str) -> None:
    assert not _agree(SLOW[name])


@pytest.mark.integration
def test_a_scan_writes_the_full_checks_rows_for_every_record(kafka: Broker, tmp_path: Path) -> None:
    """Canonical, odd and invalid records through a real topic: the scan's rows file and invalid
    file hold what the full check says, record by record."""
    topic = kafka.new_topic(partitions=1)
    enc, clock, rng = EventEncoder(), EventClock(), random.Random(9)
    values = [enc.encode(rng, clock.now(), 20_000 + i)[1] for i in range(300)]
    odd = [v for v in (*FAST.values(), *SLOW.values(), *(c.value for c in CASES)) if v and len(v) < 100_000]
    values[::3] = odd[: len(values[::3])]
    produce(kafka.bootstrap, topic, values)
    scan, files = scan_topic(kafka.bootstrap, topic, tmp_path, workers=1)
    want, invalid = [b"eventId,eventOffset,eventPublisher,customerId,eventTime,deviceIndex,deviceId,temperature,"
                     b"measure,status,partition,offset\r\n"], 0  # fmt: skip
    for offset, v in enumerate(values):
        full = _full_csv(v)
        if full is None:
            invalid += 1
        else:
            want.append(full[0].replace(SUFFIX, b",0,%d\r\n" % offset))
    assert [read_text(p) for p in files.rows] == [b"".join(want)]
    assert scan.records == len(values) and scan.invalid == invalid
    assert len(files.invalid[0].read_text().splitlines()) == invalid + 1
