"""The expected rows of a record exactly as the generator writes it, straight from its bytes to CSV
lines: `devicestream verify`'s fast path (its topic scan is CPU-bound Python).

A record takes it only when one regular expression proves it is in the generator's own form:
compact JSON (no whitespace), the contract's fields in document order and nothing else, strings
without escapes, commas, control or non-ASCII characters, integers without leading zeros or "-0",
readings {deviceId (string or null), temperature (integer), measure (string), status (string or
null)}, eventTime as YYYY-MM-DDTHH:MM:SS.ffffffZ. Such a record's rows are its text as written: no
JSON decoding, no dict, no CSV quoting (no field holds a comma, quote or line end). Anything else,
or a value out of range (an eventOffset beyond 64 bits, a temperature beyond 32, an impossible
date), returns None and takes devicestream.validity's full check, which decides it and says why.
Both give the same rows: tests/verify/test_validity_fast.py runs them side by side on odd inputs.
"""

from __future__ import annotations

import re
from typing import Final

from devicestream.validity import INT32, INT64, Invalid, event_time

_CHARS = rb'[^"\\\x00-\x1f,\x7f-\xff]*'  # no escape, comma, control or non-ASCII character
_S = rb'"(' + _CHARS + rb')"'
_SN = rb'(?:"(' + _CHARS + rb')"|null)'
_INT = rb"(0|-?[1-9][0-9]{0,18})"  # JSON's integers without "-0" (text and number agree)
_TEMP = rb"(0|-?[1-9][0-9]{0,9})"
_READING: Final = (
    rb'\{"deviceId":' + _SN + rb',"temperature":' + _TEMP + rb',"measure":' + _S + rb',"status":' + _SN + rb"\}"
)
#: One reading, its four fields captured (null and "" both as b"").
READING_RE: Final = re.compile(_READING)
_READING_NC = re.sub(rb"\((?!\?)", b"(?:", _READING)  # (the same, without captures, for the record)
#: The record; groups: eventId, eventOffset, eventPublisher, customerId, readings, eventTime's second
#: (what its validity depends on), eventTime's fraction and zone.
RECORD_RE: Final = re.compile(
    rb'\{"eventId":' + _S + rb',"eventOffset":' + _INT + rb',"eventPublisher":' + _S + rb',"customerId":' + _S
    + rb',"data":\{"devices":\[((?:' + _READING_NC + rb"(?:," + _READING_NC + rb')*)?)\]\},"eventTime":"('
    + rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{6}Z)" + rb'"\}'
)  # fmt: skip
_INDEX: Final = tuple(b"%d," % i for i in range(64))
#: Whether an eventTime's second (YYYY-MM-DDTHH:MM:SS) is a valid date-time, as event_time decides.
_SECONDS: dict[bytes, bool] = {}
_SECONDS_MAX = 1 << 16


def _valid_second(second: bytes) -> bool:
    """For YYYY-MM-DDTHH:MM:SS.ffffffZ event_time writes the text back unchanged when it is valid
    (UTC, microseconds, a 4-digit year), and its validity does not depend on the fraction."""
    valid = _SECONDS.get(second)
    if valid is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        try:
            valid = event_time(second.decode() + ".000000Z") == second.decode() + ".000000Z"
        except Invalid:
            valid = False
        _SECONDS[second] = valid
    return valid


def canonical_csv(value: bytes | None, suffix: bytes = b"\r\n") -> tuple[bytes, int, int] | None:
    """The record's expected rows as CSV lines, each ended by `suffix` (e.g. b",<partition>,<offset>\\r\\n"),
    with how many rows and the eventOffset; None when the record is not in the generator's form
    (then devicestream.validity.expected_rows decides it)."""
    m = RECORD_RE.fullmatch(value) if value else None
    if m is None:
        return None
    event_id, offset, publisher, customer, readings, second, fraction = m.groups()
    n = int(offset)
    if (len(offset) > 18 and not INT64[0] <= n <= INT64[1]) or not _valid_second(second):
        return None
    if not readings:
        return b"", 0, n
    head = b"%s,%s,%s,%s,%s%s," % (event_id, offset, publisher, customer, second, fraction)
    lines = []
    for i, (device, temp, measure, status) in enumerate(READING_RE.findall(readings)):
        if len(temp) > 9 and not INT32[0] <= int(temp) <= INT32[1]:
            return None
        index = _INDEX[i] if i < 64 else b"%d," % i
        lines.append(b"%s%s%s,%s,%s,%s%s" % (head, index, device, temp, measure, status, suffix))
    return b"".join(lines), len(lines), n
