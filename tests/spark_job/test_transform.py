"""The transformation on batch DataFrames (no Kafka): a table of good and bad records."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from contract.csv import BATCH_ROW_COLUMNS, REJECT_COLUMNS
from spark_job import transform
from spark_job.transform import Reason
from tests.validity_cases import GOOD, ev, reading

pytestmark = pytest.mark.integration


def kafka_df(spark: SparkSession, values: list[bytes | None]) -> DataFrame:
    ts = datetime(2026, 11, 28, tzinfo=UTC)
    data = [(b"k", v, "t", i % 3, 100 + i, ts) for i, v in enumerate(values)]
    schema = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    return spark.createDataFrame([tuple(bytearray(x) if isinstance(x, bytes) else x for x in r) for r in data], schema)


REJECTED: list[tuple[str, bytes | None, str]] = [
    ("null value", None, Reason.EMPTY),
    ("empty value", b"", Reason.EMPTY),
    ("not utf-8", b'\xff\xfe{"eventId": 1}', Reason.NOT_UTF8),
    ("latin-1", '{"customerId": "Ü"}'.encode("latin-1"), Reason.NOT_UTF8),
    ("not json", b"{bad json", Reason.NOT_JSON),
    ("trailing garbage", ev() + b" trailing", Reason.NOT_JSON),
    ("two documents", ev() + b"," + ev(), Reason.NOT_JSON),
    ("blank", b"   ", Reason.NOT_JSON),
    ("json array", b"[" + ev() + b"]", Reason.NOT_OBJECT),
    ("json number", b"42", Reason.NOT_OBJECT),
    ("json string", b'"hello"', Reason.NOT_OBJECT),
    ("json null", b"null", Reason.NOT_OBJECT),
    ("missing eventId", ev(eventId=...), Reason.missing("eventId")),
    ("null eventId", ev(eventId=None), Reason.missing("eventId")),
    ("missing eventOffset", ev(eventOffset=...), Reason.missing("eventOffset")),
    ("missing eventTime", ev(eventTime=...), Reason.missing("eventTime")),
    ("eventId number", ev(eventId=123), Reason.wrong_type("eventId", "string")),
    ("eventOffset string", ev(eventOffset="10001"), Reason.wrong_type("eventOffset", "integer")),
    ("eventOffset float", ev(eventOffset=1.5), Reason.wrong_type("eventOffset", "integer")),
    ("eventOffset huge", ev(eventOffset=2**70), Reason.wrong_type("eventOffset", "integer")),
    ("eventOffset bool", ev(eventOffset=True), Reason.wrong_type("eventOffset", "integer")),
    ("customerId number", ev(customerId=100), Reason.wrong_type("customerId", "string")),
    ("eventPublisher object", ev(eventPublisher={"a": 1}), Reason.wrong_type("eventPublisher", "string")),
    ("eventTime number", ev(eventTime=1764300000), Reason.wrong_type("eventTime", "string")),
    ("eventTime word", ev(eventTime="hot"), Reason.BAD_EVENT_TIME),
    ("eventTime no zone", ev(eventTime="2026-11-28T03:33:11.123456"), Reason.BAD_EVENT_TIME),
    ("eventTime date only", ev(eventTime="2026-11-28"), Reason.BAD_EVENT_TIME),
    ("eventTime month 13", ev(eventTime="2026-13-28T03:33:11Z"), Reason.BAD_EVENT_TIME),
    ("data string", ev(data="x"), Reason.wrong_type("data", "object")),
    ("devices object", ev(data={"devices": {"deviceId": "D001"}}), Reason.wrong_type("data.devices", "array")),
    ("devices string", ev(data={"devices": "none"}), Reason.wrong_type("data.devices", "array")),
    ("reading number", ev(data={"devices": [1]}), Reason.wrong_type("data.devices[]", "object")),
    ("reading null", ev(data={"devices": [None]}), Reason.wrong_type("data.devices[]", "object")),
    ("temperature hot", reading(temperature="hot"), Reason.wrong_type("data.devices[].temperature", "integer")),
    ("temperature float", reading(temperature=21.5), Reason.wrong_type("data.devices[].temperature", "integer")),
    ("temperature huge", reading(temperature=2**40), Reason.wrong_type("data.devices[].temperature", "32-bit integer")),
    ("deviceId number", reading(deviceId=7), Reason.wrong_type("data.devices[].deviceId", "string")),
    ("status bool", reading(status=False), Reason.wrong_type("data.devices[].status", "string")),
    ("measure list", reading(measure=["C"]), Reason.wrong_type("data.devices[].measure", "string")),
]


@pytest.fixture(scope="module")
def rejected_result(spark: SparkSession) -> dict[int, Row]:
    df = kafka_df(spark, [v for _, v, _ in REJECTED])
    classified = transform.classify(df)
    assert transform.rows(classified).count() == 0
    return {r["offset"]: r for r in transform.rejects(classified, batch_id=7).collect()}


@pytest.mark.parametrize(("case", "value", "reason"), REJECTED, ids=[c for c, _, _ in REJECTED])
def test_every_bad_record_is_rejected_with_its_reason(
    rejected_result: dict[int, Row], case: str, value: bytes | None, reason: str
) -> None:
    i = next(i for i, (c, _, _) in enumerate(REJECTED) if c == case)
    row = rejected_result[100 + i]
    assert row["reason"] == reason
    assert row["batchId"] == 7
    assert row["partition"] == i % 3
    if value is None:
        assert row["value"] is None
    elif reason == Reason.NOT_UTF8:
        assert row["value"].startswith("base64:")
    else:
        assert row["value"] == value.decode()


def test_rejects_columns(spark: SparkSession) -> None:
    classified = transform.classify(kafka_df(spark, [b"x"]))
    assert tuple(transform.rejects(classified, 0).columns) == REJECT_COLUMNS
    assert tuple(transform.rows(classified).columns) == BATCH_ROW_COLUMNS


def test_good_records_give_one_row_per_reading(spark: SparkSession) -> None:
    extra = copy.deepcopy(GOOD)
    extra.update(eventOffset=10001, extraTop={"nested": [1, 2]}, note="more")
    extra["data"]["firmware"] = "1.2"
    extra["data"]["devices"] = [{"deviceId": "D005", "temperature": 30, "measure": "C", "status": "STANDBY", "x": 1}]
    shifted = copy.deepcopy(GOOD)
    shifted.update(
        eventOffset=10002, eventTime="2026-11-28T05:33:11+02:00", data={"devices": [GOOD["data"]["devices"][0]]}
    )
    no_readings = [
        ev(eventOffset=10003, data={"devices": []}),
        ev(eventOffset=10004, data=...),
        ev(eventOffset=10005, data={"devices": None}),
        ev(eventOffset=10006, data={}),
    ]
    values = [ev(), json.dumps(extra).encode(), json.dumps(shifted).encode(), *no_readings, b"not json"]
    classified = transform.classify(kafka_df(spark, values))
    got = [r.asDict() for r in transform.rows(classified).collect()]
    assert [(r.pop("kafkaPartition"), r.pop("kafkaOffset")) for r in got] == [(0, 100), (0, 100), (1, 101), (2, 102)]
    base = {"eventId": GOOD["eventId"], "eventPublisher": "device", "customerId": "CI00100"}
    assert got == [
        {**base, "eventOffset": 10000, "eventTime": "2026-11-28T03:33:11.123456Z", "deviceIndex": 0,
         "deviceId": "D001", "temperature": 12, "measure": "C", "status": "SUCCESS"},
        {**base, "eventOffset": 10000, "eventTime": "2026-11-28T03:33:11.123456Z", "deviceIndex": 1,
         "deviceId": None, "temperature": 0, "measure": "C", "status": None},
        {**base, "eventOffset": 10001, "eventTime": "2026-11-28T03:33:11.123456Z", "deviceIndex": 0,
         "deviceId": "D005", "temperature": 30, "measure": "C", "status": "STANDBY"},
        {**base, "eventOffset": 10002, "eventTime": "2026-11-28T03:33:11.000000Z", "deviceIndex": 0,
         "deviceId": "D001", "temperature": 12, "measure": "C", "status": "SUCCESS"},
    ]  # fmt: skip
    counts = transform.batch_counts(classified).first()
    assert counts is not None
    assert counts.asDict() == {"inputRows": 8, "rowsOut": 4, "rejects": 1, "eventsWithoutReadings": 4}


def test_missing_optional_fields_are_empty(spark: SparkSession) -> None:
    value = ev(eventPublisher=..., customerId=None, data={"devices": [{"temperature": 3}]})
    [row] = transform.rows(transform.classify(kafka_df(spark, [value]))).collect()
    assert (row.eventPublisher, row.customerId, row.deviceId, row.measure, row.status) == (None,) * 5
    assert row.temperature == 3


def test_refuses_a_non_utc_session(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        with pytest.raises(transform.SessionTimeZoneError):
            transform.classify(kafka_df(spark, [ev()]))
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


FAST_PATH_VALUES = [
    # canonical as the generator writes them (orjson, compact)
    b'{"eventId":"a","eventOffset":10000,"eventPublisher":"device","customerId":"CI00100","data":{"devices":[]},'
    b'"eventTime":"2026-11-28T03:33:11.123456Z"}',
    b'{"eventId":"b","eventOffset":10001,"eventPublisher":"device","customerId":"CI00101","data":{"devices":['
    b'{"deviceId":"D001","temperature":0,"measure":"C","status":"SUCCESS"},'
    b'{"deviceId":null,"temperature":-30,"measure":"C","status":null}]},"eventTime":"2026-11-28T03:33:11.000001Z"}',
    # json.dumps spacing and a +00:00 zone
    b'{"eventId": "c", "eventOffset": 123456789012345678, "eventPublisher": "device", "customerId": "x", '
    b'"data": {"devices": [{"deviceId": "D5", "temperature": 999999999, "measure": "C", "status": "ERROR"}]}, '
    b'"eventTime": "2026-11-28T03:33:11.999999+00:00"}',
    # canonical shape, impossible date: not canonical (the pattern proves the date), rejected by the strict path
    b'{"eventId":"d","eventOffset":1,"eventPublisher":"device","customerId":"c","data":{"devices":[]},'
    b'"eventTime":"2026-02-30T03:33:11.123456Z"}',
    # not canonical (escape, extra field, out-of-range temperature, other order): strict path only
    b'{"eventId":"e\\"","eventOffset":2,"eventPublisher":"device","customerId":"c","data":{"devices":[]},'
    b'"eventTime":"2026-11-28T03:33:11.123456Z"}',
    b'{"eventId":"f","eventOffset":3,"eventPublisher":"device","customerId":"c","data":{"devices":[]},'
    b'"eventTime":"2026-11-28T03:33:11.123456Z","extra":1}',
    b'{"eventId":"g","eventOffset":4,"eventPublisher":"device","customerId":"c","data":{"devices":['
    b'{"deviceId":"D1","temperature":2147483648,"measure":"C","status":null}]},"eventTime":"2026-11-28T03:33:11.1Z"}',
    b'{"eventOffset":5,"eventId":"h","eventPublisher":"device","customerId":"c","data":{"devices":[]},'
    b'"eventTime":"2026-11-28T03:33:11.123456Z"}',
]


def _with(event_time: str = "2026-11-28T03:33:11.123456Z", customer: bytes = b"c") -> bytes:
    return (
        b'{"eventId":"t","eventOffset":7,"eventPublisher":"device","customerId":"' + customer + b'",'
        b'"data":{"devices":[{"deviceId":"D1","temperature":1,"measure":"C","status":null}]},'
        b'"eventTime":"' + event_time.encode() + b'"}'
    )


#: (value, canonical): the pattern proves the date-time and the UTF-8, so these edges take the fast
#: path exactly when nothing is left to check, and give the strict path's result either way.
EDGE_VALUES = [
    (_with("0001-01-01T00:00:00.000000Z"), True),
    (_with("9999-12-31T23:59:59.999999+00:00"), True),
    (_with("1582-10-10T12:00:00.000000Z"), True),  # in the Julian-Gregorian gap: proleptic Gregorian
    (_with("2000-02-29T00:00:00.000000Z"), True),
    (_with("2024-02-29T23:59:59.000000Z"), True),
    (_with("2026-12-31T23:59:59.999999Z"), True),
    (_with("0000-01-01T00:00:00.000000Z"), False),
    (_with("1900-02-29T00:00:00.000000Z"), False),
    (_with("2100-02-29T00:00:00.000000Z"), False),
    (_with("2023-02-29T00:00:00.000000Z"), False),
    (_with("2026-04-31T00:00:00.000000Z"), False),
    (_with("2026-13-01T00:00:00.000000Z"), False),
    (_with("2026-11-00T00:00:00.000000Z"), False),
    (_with("2026-11-28T24:00:00.000000Z"), False),
    (_with("2026-11-28T23:60:00.000000Z"), False),
    (_with("2026-11-28T23:59:60.000000Z"), False),
    (_with(customer="caf\u00e9".encode()), True),  # UTF-8 letters
    (_with(customer=b"bad\xff\xfeutf8"), False),  # not UTF-8 inside a string: rejected as such
    (_with(customer=b"over\xc0\xafong"), False),  # an overlong "/"
    (_with(customer=b"surrogate\xed\xa0\x80"), False),  # an encoded surrogate
    (_with(customer=b"cut\xe2\x82"), False),  # a truncated sequence
    (_with(customer="\ufffd".encode()), False),  # U+FFFD itself: valid, strict path
    (_with(customer="\U0001f600".encode()), False),  # beyond the BMP: valid, strict path
    (_with(customer=b"del\x7f"), True),  # DEL needs no escape in JSON
]


def test_fast_path_agrees_with_the_strict_checks(spark: SparkSession) -> None:
    """The regex fast path for canonical events must classify exactly as the strict VARIANT checks."""
    values = FAST_PATH_VALUES + [v for v, _ in EDGE_VALUES]
    df = kafka_df(spark, values)

    def collect(fast: bool) -> list[tuple]:
        return sorted(tuple(r) for r in transform.classify(df, fast_path=fast).collect())

    fast, strict = collect(True), collect(False)
    assert fast == strict
    canonical = df.select(F.col("value").cast("string").rlike(transform.CANONICAL_EVENT_PATTERN)).collect()
    expected = [True, True, True, False, False, False, False, False] + [c for _, c in EDGE_VALUES]
    assert [r[0] for r in canonical] == expected
    by_offset = {r["offset"]: r for r in transform.classify(df).collect()}
    reasons = [by_offset[100 + i]["reason"] for i in range(len(FAST_PATH_VALUES), len(values))]
    assert reasons[:6] == [None] * 6  # the canonical edges are valid
    assert reasons[17:21] == [Reason.NOT_UTF8] * 4
    assert reasons[21:] == [None] * 3
    assert by_offset[100 + len(FAST_PATH_VALUES) + 1]["eventTime"] == "9999-12-31T23:59:59.999999Z"


def test_screen_classifies_canonical_records_as_classify_does_and_leaves_the_others(spark: SparkSession) -> None:
    """What the streaming query plans: classify's result for canonical records; the others unclassified
    (no reason, no fields: the sink classifies a batch that has any with classify_prepared)."""
    df = kafka_df(spark, FAST_PATH_VALUES + [v for _, v, _ in REJECTED])
    columns = transform.classify(df).columns
    screened = {r["offset"]: r for r in transform.screen(df).collect()}
    assert transform.screen(df).columns[: len(transform.PREPARED_COLUMNS)] == list(transform.PREPARED_COLUMNS)
    classified = transform.classify(df).collect()
    for row in classified:
        s = screened[row["offset"]]
        if s["canonical"]:
            assert tuple(s[c] for c in columns) == tuple(row), row["offset"]
        else:
            assert [s[c] for c in columns[2:] if c != "value"] == [None] * (len(columns) - 3), row["offset"]
    assert {s["canonical"] for s in screened.values()} == {True, False}
    # the sink's second pass over screen's output: exactly classify's result
    assert sorted(map(tuple, transform.classify_prepared(transform.screen(df)).collect())) == sorted(
        map(tuple, classified)
    )


def test_a_lone_surrogate_escape_is_written_as_a_question_mark(spark: SparkSession) -> None:
    """Valid JSON that UTF-8 cannot hold: the job writes "?" for it (devicestream verify expects the
    same), as Java's UTF-8 encoder does, rather than failing the batch."""
    value = json.dumps(dict(GOOD, eventId="a\ud800b")).encode()
    row = transform.classify(kafka_df(spark, [value])).first()
    assert (row["reason"], row["eventId"]) == (None, "a?b")
