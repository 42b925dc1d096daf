import pytest

from contract.csv import ROW_HEADER
from services.merger.batchfile import parse_batch
from services.merger.errors import InvalidBatchError
from tests.merger.batches import batch_text, rows

GOOD = "e1,10000,device,CI00100,2026-11-28T03:33:11.123456Z,0,D001,12,C,SUCCESS\n"


def test_valid_batch_keeps_the_data_lines_as_written():
    parsed = parse_batch(batch_text(3, 7).encode())
    assert parsed is not None
    assert parsed.rows == 7
    assert parsed.data == rows(3, 7).encode()
    assert parsed.event_time_us.len() == 7


@pytest.mark.parametrize(
    "raw", [b"", ROW_HEADER.encode(), (ROW_HEADER + "\n").encode(), b"\xef\xbb\xbf" + ROW_HEADER.encode()]
)
def test_empty_batches(raw):
    assert parse_batch(raw) is None


def test_missing_final_newline_is_added():
    parsed = parse_batch((ROW_HEADER + "\n" + GOOD + GOOD.rstrip("\n")).encode())
    assert parsed is not None and parsed.rows == 2
    assert parsed.data == (GOOD + GOOD).encode()


@pytest.mark.parametrize("inside", ["D\r1", "D\r\n1", "D\n1", "\r", "a\r\n\r\nb"])
def test_cr_and_lf_inside_quoted_fields_are_kept_byte_for_byte(inside):
    line = GOOD.replace("D001", f'"{inside}"')
    raw = (ROW_HEADER + "\n" + line + GOOD).encode()
    parsed = parse_batch(raw)
    assert parsed is not None and parsed.rows == 2
    assert parsed.data == (line + GOOD).encode()


def test_a_field_longer_than_csv_default_limit_is_accepted():
    long_id = "D," + "x" * 200_000
    line = GOOD.replace("D001", f'"{long_id}"')
    parsed = parse_batch((ROW_HEADER + "\n" + line).encode())
    assert parsed is not None and parsed.rows == 1 and parsed.data == line.encode()


def test_quoted_fields_are_accepted():
    line = '"e1",10000,device,"CI,00100",2026-11-28T03:33:11.123456Z,0,"",12,C,\n'
    parsed = parse_batch((ROW_HEADER + "\n" + line).encode())
    assert parsed is not None and parsed.rows == 1 and parsed.data == line.encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (GOOD.replace(",12,", ",hot,"), "temperature"),
        (GOOD.replace("10000", "ten"), "eventOffset"),
        (GOOD.replace(",0,D001", ",x,D001"), "deviceIndex"),
        (GOOD.replace(",12,", ",99999999999,"), "temperature"),
        (GOOD.replace(",SUCCESS", ""), "fields"),
        (GOOD.replace(",SUCCESS", ",SUCCESS,extra"), "columns|fields"),
        (GOOD.replace("2026-11-28T03:33:11.123456Z", "yesterday"), "eventTime"),
        (GOOD.replace("e1,", ",", 1), "eventId"),
        (GOOD + "\n" + GOOD, "line 3 is blank"),
    ],
)
def test_invalid_rows(body, reason):
    with pytest.raises(InvalidBatchError, match=reason):
        parse_batch((ROW_HEADER + "\n" + body).encode())


@pytest.mark.parametrize(
    "header",
    [
        ROW_HEADER.replace("eventId,eventOffset", "eventOffset,eventId"),
        ROW_HEADER + ",extra",
        ROW_HEADER.replace(",status", ""),
        "1,2,3",
    ],
)
def test_wrong_header(header):
    with pytest.raises(InvalidBatchError, match="header"):
        parse_batch((header + "\n" + GOOD).encode())


def test_not_utf8():
    with pytest.raises(InvalidBatchError, match="UTF-8"):
        parse_batch((ROW_HEADER + "\n").encode() + GOOD.replace("D001", "D\xff01").encode("latin-1"))


def test_the_kafka_fields_are_cut_byte_for_byte_from_unquoted_rows() -> None:
    import re

    from services.merger.batchfile import _cut_kafka_prefixes

    lines = [b"0,5,a,b,c", b"12,123456789012,\xc3\x9c,\x01,\r", b"1,0,,,", b"2,7,x,1,2,3,4,5,6,7,8,9"]
    data = b"\n".join(lines) + b"\n"
    assert _cut_kafka_prefixes(data) == re.sub(rb"(?m)^\d+,\d+,", b"", data)
    assert _cut_kafka_prefixes(b"3,4,only\n") == b"only\n"
