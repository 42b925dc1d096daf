import pytest

from services.merger.download import Snapshot, etag_matches, parse_range
from services.merger.errors import RangeNotSatisfiableError


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=50-1000", (50, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: served whole
        ("items=0-1", None),
        ("bytes=9-3", None),
        # thousands of digits: past any end (RFC 9110 14.1.1: a last-pos past the end is the end)
        ("bytes=0-" + "9" * 5000, (0, 99)),
        ("bytes=-" + "9" * 5000, (0, 99)),
        ("bytes=" + "0" * 5000 + "5-" + "0" * 4000 + "7", (5, 7)),
        ("bytes=" + "9" * 5000 + "-1", None),  # last < first: ignored
        ("bytes=\u0661-2", None),  # a non-ASCII digit is not a digit of HTTP
        ("bytes=1-2-3", None),
        ("bytes = 1 - ", (1, 99)),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200", "bytes=-0", "bytes=" + "9" * 5000 + "-"])
def test_unsatisfiable_range(header):
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(header, 100)


def test_etag_changes_with_size_and_generation_and_matches_weakly():
    a, b, c = Snapshot("g1", 10, 0.0), Snapshot("g1", 11, 0.0), Snapshot("g2", 10, 0.0)
    assert len({a.etag, b.etag, c.etag}) == 3
    assert etag_matches(a.etag, a.etag)
    assert etag_matches(f'"x", W/{a.etag}', a.etag)
    assert etag_matches("*", a.etag)
    assert not etag_matches(b.etag, a.etag)
    assert not etag_matches(None, a.etag)
