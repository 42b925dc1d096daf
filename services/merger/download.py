"""HTTP semantics of the merged.csv download (pure): validators and byte ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate

from services.merger.errors import RangeNotSatisfiableError

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE | re.ASCII)
#: A position with more digits than this is past the end of any file (and int() of thousands of
#: digits raises): it is taken as this bound.
_MAX_DIGITS = 20
_HUGE = 10**_MAX_DIGITS


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


@dataclass(frozen=True)
class Snapshot:
    """What a download serves: the committed prefix of merged.csv at the time of the request."""

    generation: str
    size: int
    last_modified: float
    #: The first segment retained (contract.segments): retention removes the oldest rows, so the
    #: same length may then hold other bytes.
    first_segment: int = 0

    @property
    def etag(self) -> str:
        # The committed prefix of a generation of merged.csv never changes (appends only), so the
        # generation and the length identify the bytes: a strong validator. Once retention removed
        # segments, the first one retained is part of it.
        if self.first_segment:
            return f'"{self.generation}-{self.first_segment}-{self.size}"'
        return f'"{self.generation}-{self.size}"'

    @property
    def last_modified_http(self) -> str:
        return formatdate(self.last_modified, usegmt=True)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/ prefixes are ignored; `*` matches any."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        c = candidate.strip()
        if c == "*" or c.removeprefix("W/") == etag:
            return True
    return False


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range [start, end] (inclusive) a Range header asks for, or None to serve the
    whole file (no header, another unit, several ranges or bad syntax: RFC 9110 lets us ignore it).
    Raises RangeNotSatisfiableError when the range lies entirely past the end."""
    if not header:
        return None
    m = _RANGE_RE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = _position(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiableError(size)
        return max(0, size - n), size - 1
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid range-spec: ignored
    if start >= size:
        raise RangeNotSatisfiableError(size)
    return start, min(_position(last), size - 1) if last else size - 1
