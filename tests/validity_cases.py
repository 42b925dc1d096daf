"""The one table of valid and invalid records: what the Spark job must do with each (reject it with
this reason, or accept it and write this eventTime with this many rows).

It drives both tests/spark_job/test_validity_table.py (through the real transform) and
tests/verify/test_validity_table.py (through devicestream.validity, what `devicestream verify`
runs), so the job and verify cannot disagree on a record without a test failing. The reasons are
contract.reasons', which both sides use.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from contract.reasons import Reason

GOOD: dict[str, Any] = {
    "eventId": "0b6f3c2e-5a8d-4c1e-9f7a-2d4b6e8a1c3f",
    "eventOffset": 10000,
    "eventPublisher": "device",
    "customerId": "CI00100",
    "data": {
        "devices": [
            {"deviceId": "D001", "temperature": 12, "measure": "C", "status": "SUCCESS"},
            {"deviceId": None, "temperature": 0, "measure": "C", "status": None},
        ]
    },
    "eventTime": "2026-11-28T03:33:11.123456Z",
}

INT32_MAX = 2**31 - 1
EMPTY = Reason.EMPTY
NOT_UTF8 = Reason.NOT_UTF8
NOT_JSON = Reason.NOT_JSON
NOT_OBJECT = Reason.NOT_OBJECT
BAD_TIME = Reason.BAD_EVENT_TIME
missing = Reason.missing
wrong = Reason.wrong_type


def ev(*, compact: bool = False, **changes: Any) -> bytes:
    """GOOD with top-level changes (a value of ... removes the field); compact = as the generator
    writes it (the job's fast path), otherwise with spaces (the strict path)."""
    e = copy.deepcopy(GOOD)
    for k, v in changes.items():
        if v is ...:
            e.pop(k)
        else:
            e[k] = v
    return json.dumps(e, separators=(",", ":") if compact else None).encode()


def reading(**changes: Any) -> bytes:
    r = {"deviceId": "D002", "temperature": 5, "measure": "C", "status": "ERROR", **changes}
    return ev(data={"devices": [r]})


@dataclass(frozen=True)
class Case:
    name: str
    value: bytes | None
    #: the reject reason, None for a valid record
    reason: str | None
    #: for a valid record: the eventTime the job writes, and how many rows it gives
    event_time: str | None = None
    rows: int = 0


def valid(name: str, value: bytes, event_time: str = "2026-11-28T03:33:11.123456Z", rows: int = 2) -> Case:
    return Case(name, value, None, event_time, rows)


def _times() -> list[Case]:
    """eventTime at the edges, each through the strict path and the fast path (compact JSON)."""
    good = [
        ("zone Z", "2026-11-28T03:33:11Z", "2026-11-28T03:33:11.000000Z"),
        ("zone +00:00", "2026-11-28T03:33:11.123456+00:00", "2026-11-28T03:33:11.123456Z"),
        ("zone -00:00", "2026-11-28T03:33:11-00:00", "2026-11-28T03:33:11.000000Z"),
        ("zone +02:00", "2026-11-28T05:33:11+02:00", "2026-11-28T03:33:11.000000Z"),
        ("zone +18:00", "2026-11-28T03:33:11+18:00", "2026-11-27T09:33:11.000000Z"),
        ("zone -18:00", "2026-11-28T03:33:11-18:00", "2026-11-28T21:33:11.000000Z"),
        ("nanoseconds truncated", "2026-11-28T03:33:11.9999999Z", "2026-11-28T03:33:11.999999Z"),
        ("one fraction digit", "2026-11-28T03:33:11.1Z", "2026-11-28T03:33:11.100000Z"),
        ("before 1970", "1969-12-31T23:59:59.9999999Z", "1969-12-31T23:59:59.999999Z"),
        ("leap day", "2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"),
        ("gregorian cutover", "1582-10-10T00:00:00Z", "1582-10-10T00:00:00.000000Z"),
        ("year 1 to year 0", "0001-01-01T00:00:00+01:00", "0000-12-31T23:00:00.000000Z"),
        ("year 0 to year -1", "0000-01-01T00:00:00+01:00", "-0001-12-31T23:00:00.000000Z"),
        ("year 9999 to 10000", "9999-12-31T23:59:59-01:00", "+10000-01-01T00:59:59.000000Z"),
        ("last microsecond", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("final newline", "2026-11-28T03:33:11Z\n", "2026-11-28T03:33:11.000000Z"),
        ("final CR LF", "2026-11-28T03:33:11+01:00\r\n", "2026-11-28T02:33:11.000000Z"),
    ]
    bad = [
        ("word", "hot"),
        ("no zone", "2026-11-28T03:33:11.123456"),
        ("date only", "2026-11-28"),
        ("basic format", "20261128T033311Z"),
        ("no seconds", "2026-11-28T03:33Z"),
        ("space separator", "2026-11-28 03:33:11Z"),
        ("lower case", "2026-11-28t03:33:11z"),
        ("empty fraction", "2026-11-28T03:33:11.Z"),
        ("month 13", "2026-13-28T03:33:11Z"),
        ("month 0", "2026-00-10T00:00:00Z"),
        ("day 0", "2026-01-00T00:00:00Z"),
        ("april 31", "2026-04-31T00:00:00Z"),
        ("february 29 of a common year", "2026-02-29T00:00:00Z"),
        ("hour 24", "2026-11-28T24:00:00Z"),
        ("leap second", "2026-11-28T23:59:60Z"),
        ("zone +18:01", "2026-11-28T03:33:11+18:01"),
        ("zone +19:00", "2026-11-28T03:33:11+19:00"),
        ("zone minutes 70", "2026-11-28T03:33:11+05:70"),
        ("fullwidth digits", "\uff12\uff10\uff12\uff16-11-28T03:33:11Z"),
        ("two final newlines", "2026-11-28T03:33:11Z\n\n"),
        ("final space", "2026-11-28T03:33:11Z "),
        ("final next-line", "2026-11-28T03:33:11Z\u0085"),
        ("negative year", "-001-01-01T00:00:00Z"),
    ]
    cases = []
    for compact in (False, True):
        path = "fast" if compact else "strict"
        cases += [valid(f"eventTime {n} ({path})", ev(compact=compact, eventTime=t), want) for n, t, want in good]
        cases += [Case(f"eventTime {n} ({path})", ev(compact=compact, eventTime=t), BAD_TIME) for n, t in bad]
    return cases


CASES: list[Case] = [
    valid("the generator's event", ev(compact=True)),
    valid("with spaces", ev()),
    valid("extra fields", ev(extra={"nested": [1, 2]}, note="more")),
    valid("no devices", ev(data={"devices": []}), rows=0),
    valid("data null", ev(data=None), rows=0),
    valid("data without devices", ev(data={"firmware": "1.2"}), rows=0),
    valid("optional fields absent", ev(eventPublisher=..., customerId=...)),
    valid("optional fields null", ev(eventPublisher=None, customerId=None)),
    valid("reading fields absent", ev(data={"devices": [{}]}), rows=1),
    valid(
        "temperature at 32-bit bounds", ev(data={"devices": [{"temperature": -(2**31)}, {"temperature": 2**31 - 1}]})
    ),
    valid("eventOffset at 64-bit bounds", ev(eventOffset=2**63 - 1)),
    valid("escapes in strings", ev(eventId='a"b\\c\u00e9\n')),
    Case("null value", None, EMPTY),
    Case("empty value", b"", EMPTY),
    Case("not utf-8", b'\xff\xfe{"eventId": 1}', NOT_UTF8),
    Case("latin-1", '{"customerId": "Ü"}'.encode("latin-1"), NOT_UTF8),
    Case("not json", b"{bad json", NOT_JSON),
    Case("trailing garbage", ev() + b" trailing", NOT_JSON),
    Case("two documents", ev() + b"," + ev(), NOT_JSON),
    Case("blank", b"   ", NOT_JSON),
    Case("duplicate key", ev()[:-1] + b', "eventId": "again"}', NOT_JSON),
    Case("duplicate key in an extra object", ev(extra={"a": 1})[:-2] + b', "a": 2}}', NOT_JSON),
    valid("lone surrogate escape", ev()[:-1] + b', "note": "\\ud800"}'),
    valid("NUL escape", ev(eventId="a\u0000b")),
    Case("NaN", ev()[:-1] + b', "note": NaN}', NOT_JSON),
    Case("Infinity", ev()[:-1] + b', "note": -Infinity}', NOT_JSON),
    valid("number beyond a double", ev()[:-1] + b', "note": 1e400}'),
    valid("long decimal", ev()[:-1] + b', "note": 123456789012345678901234567890.123456789}'),
    valid("nested 999 levels", ev()[:-1] + b', "note": ' + b"[" * 998 + b"]" * 998 + b"}"),
    Case("nested 1000 levels", ev()[:-1] + b', "note": ' + b"[" * 999 + b"]" * 999 + b"}", NOT_JSON),
    Case("nested 1024 levels", ev()[:-1] + b', "note": ' + b"[" * 1023 + b"]" * 1023 + b"}", NOT_JSON),
    Case("nested 5000 levels", ev()[:-1] + b', "note": ' + b"[" * 5000 + b"]" * 5000 + b"}", NOT_JSON),
    valid("leading and trailing whitespace", b" \t\r\n" + ev() + b"\n "),
    Case("byte order mark", "\ufeff".encode() + ev(), NOT_JSON),
    Case("json array", b"[" + ev() + b"]", NOT_OBJECT),
    Case("json number", b"42", NOT_OBJECT),
    Case("json string", b'"hello"', NOT_OBJECT),
    Case("json null", b"null", NOT_OBJECT),
    Case("missing eventId", ev(eventId=...), missing("eventId")),
    Case("null eventId", ev(eventId=None), missing("eventId")),
    Case("missing eventOffset", ev(eventOffset=...), missing("eventOffset")),
    Case("missing eventTime", ev(eventTime=...), missing("eventTime")),
    Case("missing eventId before a wrong eventOffset", ev(eventId=..., eventOffset="1"), missing("eventId")),
    Case("eventId number", ev(eventId=123), wrong("eventId", "string")),
    Case("eventOffset string", ev(eventOffset="10001"), wrong("eventOffset", "integer")),
    Case("eventOffset float", ev(eventOffset=1.5), wrong("eventOffset", "integer")),
    Case("eventOffset 1.0", ev(eventOffset=1.0), wrong("eventOffset", "integer")),
    Case("eventOffset huge", ev(eventOffset=2**70), wrong("eventOffset", "integer")),
    Case("eventOffset 2^63", ev(eventOffset=2**63), wrong("eventOffset", "integer")),
    Case("eventOffset bool", ev(eventOffset=True), wrong("eventOffset", "integer")),
    Case("customerId number", ev(customerId=100), wrong("customerId", "string")),
    Case("eventPublisher object", ev(eventPublisher={"a": 1}), wrong("eventPublisher", "string")),
    Case("eventTime number", ev(eventTime=1764300000), wrong("eventTime", "string")),
    Case("data string", ev(data="x"), wrong("data", "object")),
    Case("data list", ev(data=[]), wrong("data", "object")),
    Case("devices object", ev(data={"devices": {"deviceId": "D001"}}), wrong("data.devices", "array")),
    Case("devices string", ev(data={"devices": "none"}), wrong("data.devices", "array")),
    Case("reading number", ev(data={"devices": [1]}), wrong("data.devices[]", "object")),
    Case("reading null", ev(data={"devices": [None]}), wrong("data.devices[]", "object")),
    Case("temperature hot", reading(temperature="hot"), wrong("data.devices[].temperature", "integer")),
    Case("temperature float", reading(temperature=21.5), wrong("data.devices[].temperature", "integer")),
    Case("temperature huge", reading(temperature=2**40), wrong("data.devices[].temperature", "32-bit integer")),
    Case("temperature beyond 64 bits", reading(temperature=2**64), wrong("data.devices[].temperature", "integer")),
    Case("deviceId number", reading(deviceId=7), wrong("data.devices[].deviceId", "string")),
    Case("status bool", reading(status=False), wrong("data.devices[].status", "string")),
    Case("measure list", reading(measure=["C"]), wrong("data.devices[].measure", "string")),
    Case(
        "a field type before the temperature range",
        reading(temperature=2**40, status=1),
        wrong("data.devices[].status", "string"),
    ),
    *_times(),
]
