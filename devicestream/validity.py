"""What one Kafka record must become, decided exactly as the Spark job (spark_job/transform.py)
decides it, without Spark: the rows it produces (ROW_COLUMNS order, null as "") or the reason it is
rejected (the same words as the job's rejects).

`devicestream verify` runs this on every record of the topic not in the generator's own form (those
take devicestream.validity_fast, which gives the same rows: tests/verify/test_validity_fast.py).
tests/validity_cases.py is the one table of valid and invalid records both this module's tests and
the Spark transform's tests run, so the two cannot drift apart.

The rules, in the job's order (the first that applies is the reason):
empty value; not UTF-8; not JSON (exactly one document); not a JSON object; missing eventId,
eventOffset, eventTime (absent or null); a top-level scalar of the wrong JSON type (eventOffset: an
integer that fits in 64 bits); eventTime not a string; eventTime not an ISO-8601 date-time with a
zone that Spark can represent; data not an object; data.devices not an array; a reading not an
object, a reading field of the wrong type, a temperature beyond 32 bits.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Final

import orjson

from contract.events import REQUIRED_FIELDS
from contract.reasons import Reason

INT32: Final = (-(2**31), 2**31 - 1)
INT64: Final = (-(2**63), 2**63 - 1)

#: The job's pattern (transform.EVENT_TIME_PATTERN). Java's `\d` is ASCII only, hence re.ASCII; the
#: final line terminator Java's `$` allows is matched explicitly (Spark's cast then trims it).
EVENT_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))(?:\r\n|\r|\n)?",
    re.ASCII,
)
#: The deepest nesting of a valid document: Spark's JSON parser (Jackson) allows 1000 levels, and
#: the job wraps the value in [...] to catch trailing garbage.
MAX_DEPTH: Final = 999
#: A record exactly as the generator writes it (the job's CANONICAL_EVENT_PATTERN, loosely): fixed
#: keys, strings without escapes, so orjson and the job agree on it (no duplicate keys, no lone
#: surrogates, no deep nesting, no out-of-range numbers); anything else takes the strict parse.
_S = r'"[^"\\\x00-\x1f]*"'
_SN = rf"(?:{_S}|null)"
_C = r": ?"
_READING = rf'\{{"deviceId"{_C}{_SN}, ?"temperature"{_C}-?\d{{1,10}}, ?"measure"{_C}{_S}, ?"status"{_C}{_SN}\}}'
CANONICAL_RE: Final = re.compile(
    rf'\{{"eventId"{_C}{_S}, ?"eventOffset"{_C}-?\d{{1,19}}, ?"eventPublisher"{_C}{_S}, ?"customerId"{_C}{_S}, ?'
    rf'"data"{_C}\{{"devices"{_C}\[(?:{_READING}(?:, ?{_READING})*)?\]\}}, ?"eventTime"{_C}{_S}\}}',
    re.ASCII,
)
_STRING_RE: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_RE: Final = re.compile(r"[\[\]{}]")
#: java.time.ZoneOffset's bound.
MAX_OFFSET_S: Final = 18 * 3600
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_US_PER_DAY: Final = 86_400_000_000


class Invalid(ValueError):
    """A record the pipeline must reject; the message is the reason."""


# ---- eventTime --------------------------------------------------------------------------------


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400  # floor division: Hinnant's C version adjusts for truncation instead
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _format_year(y: int) -> str:
    """java.time's `uuuu` as Spark prints it: 4 digits, a sign beyond 9999 or below 0."""
    if y > 9999:
        return f"+{y}"
    if y < 0:
        return f"-{-y:04d}"
    return f"{y:04d}"


def event_time(v: Any) -> str:
    """eventTime as the job writes it (UTC, microseconds, "Z"); raises Invalid as the job rejects.

    Pure integer arithmetic on the proleptic Gregorian calendar, like Spark's: no datetime, so no
    OverflowError at the edges (9999-12-31T23:59:59-01:00 is year 10000 in UTC, which Spark
    writes as +10000-01-01T00:59:59.000000Z; 0000-01-01 is a valid year too)."""
    if not isinstance(v, str):
        raise Invalid(Reason.wrong_type("eventTime", "string"))
    m = EVENT_TIME_RE.fullmatch(v)
    if m is None:
        raise Invalid(Reason.BAD_EVENT_TIME)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zone, sign, off_h, off_m = m.group(7, 8, 9, 10, 11)
    if not 1 <= month <= 12:
        raise Invalid(Reason.BAD_EVENT_TIME)
    days_in_month = 29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days_in_month or hour > 23 or minute > 59 or second > 59:
        raise Invalid(Reason.BAD_EVENT_TIME)
    offset_s = 0
    if zone != "Z":
        if int(off_m) > 59:
            raise Invalid(Reason.BAD_EVENT_TIME)
        offset_s = (int(off_h) * 3600 + int(off_m) * 60) * (-1 if sign == "-" else 1)
        if abs(offset_s) > MAX_OFFSET_S:
            raise Invalid(Reason.BAD_EVENT_TIME)
    micros = int((fraction or "0")[:6].ljust(6, "0"))  # Spark keeps microseconds, truncating
    t = (
        _days_from_civil(year, month, day) * _US_PER_DAY
        + ((hour * 60 + minute) * 60 + second - offset_s) * 1_000_000
        + micros
    )
    days, us = divmod(t, _US_PER_DAY)
    y, mo, d = _civil_from_days(days)
    s, us = divmod(us, 1_000_000)
    return f"{_format_year(y)}-{mo:02d}-{d:02d}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{us:06d}Z"


# ---- a record ---------------------------------------------------------------------------------


def _is_int(v: Any, bounds: tuple[int, int] = INT64) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and bounds[0] <= v <= bounds[1]


def _str_or_absent(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _reading(r: Any) -> list[str]:
    """One reading's deviceId, temperature, measure, status; raises Invalid as the job does."""
    path = "data.devices[]"
    if not isinstance(r, dict):
        raise Invalid(Reason.wrong_type(path, "object"))
    for name in ("deviceId", "temperature", "measure", "status"):
        v = r.get(name)
        ok = v is None or _is_int(v) if name == "temperature" else _str_or_absent(v)
        if not ok:
            raise Invalid(Reason.wrong_type(f"{path}.{name}", "integer" if name == "temperature" else "string"))
    temp = r.get("temperature")
    if temp is not None and not _is_int(temp, INT32):
        raise Invalid(Reason.wrong_type(f"{path}.temperature", "32-bit integer"))
    return [r.get("deviceId") or "", "" if temp is None else str(temp), r.get("measure") or "", r.get("status") or ""]


def _depth(text: str) -> int:
    depth = deepest = 0
    for m in _BRACKET_RE.finditer(_STRING_RE.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("duplicate key")  # Spark's parser refuses duplicate keys
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_loads(text: str) -> Any:
    """JSON as Spark's parser reads it: duplicate keys, NaN/Infinity and more than MAX_DEPTH levels
    refused; lone surrogates and numbers beyond a double's range accepted."""
    if _depth(text) > MAX_DEPTH:
        raise ValueError("nested too deeply")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, MAX_DEPTH + 1000))  # the C decoder counts levels as calls
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    finally:
        sys.setrecursionlimit(limit)


def parse(value: bytes | None) -> dict[str, Any]:
    """The record as a JSON object; raises Invalid (empty, not UTF-8, not JSON, not an object)."""
    if not value:
        raise Invalid(Reason.EMPTY)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(Reason.NOT_UTF8) from e
    try:
        doc = orjson.loads(text) if CANONICAL_RE.fullmatch(text) else _strict_loads(text)
    except (ValueError, RecursionError) as e:  # orjson's and json's decode errors are ValueErrors
        raise Invalid(Reason.NOT_JSON) from e
    if not isinstance(doc, dict):
        raise Invalid(Reason.NOT_OBJECT)
    return doc


def expected_rows(value: bytes | None) -> list[list[str]]:
    """The CSV rows (ROW_COLUMNS order, null as "") that the record `value` must produce; raises
    Invalid with the job's reason when the record must be rejected."""
    doc = parse(value)
    for f in REQUIRED_FIELDS:
        if doc.get(f) is None:
            raise Invalid(Reason.missing(f))
    for name in ("eventId", "eventOffset", "eventPublisher", "customerId"):
        v = doc.get(name)
        if name == "eventOffset" and not _is_int(v):
            raise Invalid(Reason.wrong_type(name, "integer"))
        if name != "eventOffset" and not _str_or_absent(v):
            raise Invalid(Reason.wrong_type(name, "string"))
    when = event_time(doc["eventTime"])
    data = doc.get("data")
    if data is not None and not isinstance(data, dict):
        raise Invalid(Reason.wrong_type("data", "object"))
    devices = None if data is None else data.get("devices")
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise Invalid(Reason.wrong_type("data.devices", "array"))
    readings = [_reading(r) for r in devices]
    head = [doc["eventId"], str(doc["eventOffset"]), doc.get("eventPublisher") or "", doc.get("customerId") or ""]
    return [[*head, when, str(i), *r] for i, r in enumerate(readings)]
