"""The transformation, as pure functions DataFrame -> DataFrame (no I/O, no Kafka).

Input: the Kafka source columns (key, value: binary, topic, partition, offset, timestamp).

`classify` gives one row per Kafka record with a `reason` (null for a valid event) and the typed
event fields (`screen` the same for canonical events only: what the streaming query plans);
`rows` explodes the valid events into one row per device reading (BATCH_ROW_COLUMNS: the record's
Kafka partition and offset, then ROW_COLUMNS); `rejects` keeps the bad records (REJECT_COLUMNS);
`count_columns` / `batch_counts` sum what the progress reports.

Why not `from_json` alone: Spark's JSON reader coerces silently (123 becomes "123" for a string
field, an integer becomes epoch seconds for a timestamp, a type mismatch nulls the field) and
ignores trailing garbage. So each value is parsed once into a VARIANT (`try_parse_json`, wrapped in
`[...]` so trailing garbage or two documents make it invalid), the JSON type of every field is
checked with `schema_of_variant`, and only then are the fields extracted with the types of
schema.EVENT_SCHEMA. Everything runs in the JVM (no Python UDF). Spark 4 runs in ANSI mode, so
every extraction uses the try_ variants: a bad record yields a reason, never a failed task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.csv import REJECT_COLUMNS
from contract.reasons import Reason
from spark_job.schema import (
    EVENT_SCALARS,
    JSON_ARRAY_PREFIX,
    JSON_INTEGER,
    JSON_NULL,
    JSON_OBJECT_PREFIX,
    JSON_STRING,
    READING_SCALARS,
)

#: eventTime as written (contract.csv.EVENT_TIME_FORMAT), in Spark's datetime pattern language.
SPARK_EVENT_TIME_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
#: An ISO-8601 date-time with a zone designator (so the instant never depends on a session zone).
EVENT_TIME_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
UTC_ZONES: Final = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00", "Etc/GMT"})
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

_EXPECTED: Final = {JSON_STRING: "string", JSON_INTEGER: "integer"}


class SessionTimeZoneError(ValueError):
    """eventTime is formatted in the session time zone, which must therefore be UTC."""


def check_utc_session(df: DataFrame) -> None:
    tz = df.sparkSession.conf.get("spark.sql.session.timeZone")
    if tz not in UTC_ZONES:
        raise SessionTimeZoneError(f"spark.sql.session.timeZone must be UTC to write eventTime, got {tz!r}")


def _json_type(doc: Column, path: str) -> Column:
    """The JSON type at `path` ("STRING", "BIGINT", "OBJECT<...>", "VOID" for null), null when absent."""
    return F.schema_of_variant(F.variant_get(doc, path, "variant"))


def _absent(t: Column) -> Column:
    return t.isNull() | (t == F.lit(JSON_NULL))


def _reading_reason(reading: Column) -> Column:
    """Why one element of data.devices is invalid, or null."""
    t = F.schema_of_variant(reading)
    reason = F.when(
        t.isNull() | ~t.startswith(JSON_OBJECT_PREFIX), F.lit(Reason.wrong_type("data.devices[]", "object"))
    )
    for field, expected in READING_SCALARS.items():
        ft = _json_type(reading, f"$.{field}")
        reason = reason.when(
            ~_absent(ft) & (ft != F.lit(expected)),
            F.lit(Reason.wrong_type(f"data.devices[].{field}", _EXPECTED[expected])),
        )
    temperature = F.try_variant_get(reading, "$.temperature", "bigint")
    return reason.when(
        ~temperature.between(INT32_MIN, INT32_MAX),
        F.lit(Reason.wrong_type("data.devices[].temperature", "32-bit integer")),
    )


#: schema_of_variant of a data.devices array whose readings all have the contract's types (the fast
#: path; anything else, e.g. an extra reading field, is checked reading by reading).
_READING_FIELD: Final = r"(deviceId|measure|status): (STRING|VOID)|temperature: (BIGINT|VOID)"
VALID_DEVICES_PATTERN: Final = rf"^ARRAY<OBJECT<({_READING_FIELD})(, ({_READING_FIELD}))*>>$"
READINGS_TYPE: Final = "array<struct<deviceId:string,temperature:int,measure:string,status:string>>"


# ---- the fast path: canonical events --------------------------------------------------------------
#
# Almost every record is an event exactly as the generator writes it (orjson, compact, fields in
# contract order, strings without escapes). For those, one regex over the text proves every JSON
# type the strict checks would check, so Spark's codegen'd from_json can extract the fields: about
# ten times cheaper than the VARIANT checks. Anything else (other field order, escapes, extra
# fields, any doubt) takes the strict path; both give the same result for a canonical record.
# A JSON string without escapes or control characters, and without U+FFFD: rlike matches the text
# as Java decodes it, which turns every malformed UTF-8 sequence into U+FFFD, so a canonical record
# is valid UTF-8 (the fast path skips is_valid_utf8). Written as an intersection: a negated class
# with U+FFFD in it ran ~3x slower in java.util.regex. (A character beyond the BMP takes the strict path.)
_S: Final = r'"[\x20-\uffff&&[^"\\\ufffd]]*"'
_SN: Final = rf"(?:{_S}|null)"
_INT32: Final = r"-?(?:0|[1-9]\d{0,8})"
_INT64: Final = r"-?(?:0|[1-9]\d{0,17})"
_C: Final = r": ?"  # orjson writes "k":v, Python's json.dumps "k": v
# A real date-time in years 0001-9999 with microseconds (so the fast path needs no timestamp parse:
# the text, with "Z" for "+00:00", is what date_format writes): months' lengths, Feb 29 in leap years
# (divisible by 4, centuries by 400), hours 00-23, no leap second.
_MONTH_DAY: Final = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
)
_LEAP_YEAR: Final = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_EVENT_TIME: Final = rf"(?!0000)(?:\d{{4}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{{6}}"
_READING: Final = rf'\{{"deviceId"{_C}{_SN}, ?"temperature"{_C}{_INT32}, ?"measure"{_C}{_S}, ?"status"{_C}{_SN}\}}'
CANONICAL_EVENT_PATTERN: Final = (
    rf'^\{{"eventId"{_C}{_S}, ?"eventOffset"{_C}{_INT64}, ?"eventPublisher"{_C}{_S}, ?"customerId"{_C}{_S}, ?'
    rf'"data"{_C}\{{"devices"{_C}\[(?:{_READING}(?:, ?{_READING})*)?\]\}}, ?'
    rf'"eventTime"{_C}"{_EVENT_TIME}(?:Z|\+00:00)"\}}$'
)
_FAST_SCHEMA: Final = (
    "eventId string, eventOffset bigint, eventPublisher string, customerId string, "
    f"data struct<devices: {READINGS_TYPE}>, eventTime string"
)


#: The columns `prepare` gives (and `screen` keeps in front of its own).
PREPARED_COLUMNS: Final = ("partition", "offset", "raw", "utf8", "text", "canonical", "fast")


def prepare(kafka_df: DataFrame, *, fast_path: bool = True) -> DataFrame:
    """What both paths start from (PREPARED_COLUMNS): partition, offset, raw (the value's bytes), utf8,
    text (the value as text when it is UTF-8), canonical (the text matches CANONICAL_EVENT_PATTERN;
    always false without `fast_path`), fast (a canonical record's fields, parsed by from_json).

    A canonical record is valid UTF-8 (CANONICAL_EVENT_PATTERN), so is_valid_utf8 only runs (lazily,
    where a plan needs `utf8` or `text`) for the others."""
    check_utc_session(kafka_df)
    value = F.col("value")
    decoded = F.col("decoded")
    # Stage by stage (separate projections) so each expensive expression is computed once.
    df = kafka_df.select("partition", "offset", value.alias("raw"), value.cast("string").alias("decoded"))
    canonical = F.coalesce(decoded.rlike(CANONICAL_EVENT_PATTERN), F.lit(False)) if fast_path else F.lit(False)
    df = df.select("*", canonical.alias("canonical")).select(
        "partition",
        "offset",
        "raw",
        (F.col("canonical") | F.is_valid_utf8("raw")).alias("utf8"),
        "decoded",
        "canonical",
    )
    return df.select(
        "partition",
        "offset",
        "raw",
        "utf8",
        F.when(F.col("utf8"), decoded).alias("text"),
        "canonical",
        F.when(F.col("canonical"), F.from_json(decoded, _FAST_SCHEMA)).alias("fast"),
    )


def _fast_fields() -> dict[str, Column]:
    """A canonical record's output fields, from `fast` (null for any other record). Its eventTime is
    proven a real date-time by the pattern: written as is, with "Z" for "+00:00" (what date_format
    writes for it; a test checks both against the strict path), so a canonical record has no reason."""
    fast = F.col("fast")
    text = fast.getField("eventTime")
    return {
        "eventId": fast.getField("eventId"),
        "eventOffset": fast.getField("eventOffset"),
        "eventPublisher": fast.getField("eventPublisher"),
        "customerId": fast.getField("customerId"),
        # 27 bytes: "...ssssssZ" (octet_length is O(1); endswith was 1.6% of a task)
        "eventTime": F.when(F.octet_length(text) == 27, text).otherwise(F.concat(F.substring(text, 1, 26), F.lit("Z"))),
        "devices": fast.getField("data").getField("devices"),
    }


def _rejected_value() -> Column:
    """The raw value as text for the rejects: UTF-8 as is, otherwise "base64:<bytes>"."""
    return F.when(F.col("utf8"), F.col("text")).otherwise(F.concat(F.lit("base64:"), F.base64("raw")))


def screen(kafka_df: DataFrame) -> DataFrame:
    """`classify` for canonical records only: PREPARED_COLUMNS, then classify's columns after
    partition and offset (reason, value, the event fields, devices) for the canonical records; a
    record that is not canonical gets them all null: no reason and no rows. What the streaming
    query plans for each micro-batch.

    Why: the strict checks are most of classify's generated code, and a micro-batch generates its
    code anew (on the driver for the fused stage, in each task for the projections Spark cannot
    fuse: from_json and the per-reading check's higher-order functions are CodegenFallback). For a
    small batch that code generation was most of its time, though canonical events never run the
    checks. The sink counts the records that are not canonical (`not_canonical_count`) and, for a
    batch that has any, classifies it again with `classify_prepared`: only unusual input pays."""
    f = _fast_fields()
    return prepare(kafka_df).select(
        "*",
        F.lit(None).cast("string").alias("reason"),
        _rejected_value().alias("value"),
        *(f[name].alias(name) for name in ("eventId", "eventOffset", "eventPublisher", "customerId", "eventTime")),
        f["devices"].alias("devices"),
    )


def not_canonical_count() -> Column:
    """The number of records `screen` left unclassified (for DataFrame.observe over its output)."""
    return F.count_if(~F.col("canonical")).alias("notCanonical")


def classify(kafka_df: DataFrame, *, fast_path: bool = True) -> DataFrame:
    """One row per Kafka record: partition, offset, reason (null when valid),
    value (the raw value as text for the rejects: UTF-8 as is, otherwise "base64:<bytes>"), and the
    typed event fields eventId, eventOffset, eventPublisher, customerId, eventTime (formatted), devices."""
    return classify_prepared(prepare(kafka_df, fast_path=fast_path))


def classify_prepared(prepared: DataFrame, stages: Stages | None = None) -> DataFrame:
    """`classify` of `prepare`'s output (or `screen`'s: its PREPARED_COLUMNS are used). `stages`:
    prebuilt (`strict_stages()`; building them is ~0.4 s of py4j calls)."""
    df = prepared
    for columns in stages or strict_stages():
        df = df.select(*columns)
    return df


#: The projections of classify_prepared, one tuple of Columns per DataFrame.select.
Stages = tuple[tuple[Column, ...], ...]


def strict_stages() -> Stages:
    """classify_prepared's projections, stage by stage (so each expensive expression is computed
    once); Column objects only (no DataFrame): build them once, apply them to any batch.

    Cost: a canonical record takes the fast path; any other is checked with one schema_of_variant
    per top-level scalar and one for data.devices; the per-reading checks (a higher-order function,
    evaluated without codegen) only run, lazily inside the CASE, for events whose devices array is
    not canonical."""
    every = F.col("*")
    # The strict path parses only what the fast path did not take (CASE evaluates lazily).
    items = F.when(
        ~F.col("canonical"),
        F.try_variant_get(F.try_parse_json(F.concat(F.lit("["), F.col("text"), F.lit("]"))), "$", "array<variant>"),
    )
    parsed = (
        (every, items.alias("items")),
        (
            every,
            (F.size("items") == 1).alias("json"),
            F.when(F.size("items") == 1, F.try_element_at("items", F.lit(1))).alias("doc"),
        ),
    )
    doc = F.col("doc")
    devices_path = "$.data.devices"
    typed = (
        every,
        # The value parsed as exactly one JSON document: it is an object iff it starts with "{".
        F.col("text").rlike(r"^\s*\{").alias("isObject"),
        *(_json_type(doc, f"$.{name}").alias(f"t_{name}") for name in (*EVENT_SCALARS, "eventTime")),
        F.variant_get(doc, "$.data", "variant").alias("dataValue"),
        _json_type(doc, devices_path).alias("t_devices"),
        F.try_variant_get(doc, "$.eventTime", "string").alias("eventTimeText"),
        F.try_variant_get(doc, "$.eventTime", "timestamp").alias("eventTs"),
        F.try_variant_get(doc, devices_path, READINGS_TYPE).alias("devices"),
        F.try_variant_get(doc, devices_path, "array<struct<temperature:bigint>>").alias("temps64"),
    )

    t = F.col
    temps = t("temps64.temperature")
    devices_ok = (
        _absent(t("t_devices"))
        | ((t("t_devices") == F.lit("ARRAY<VOID>")) & (F.size("devices") == 0))
        | (
            t("t_devices").rlike(VALID_DEVICES_PATTERN)
            & (F.coalesce(F.array_max(temps), F.lit(0)) <= INT32_MAX)
            & (F.coalesce(F.array_min(temps), F.lit(0)) >= INT32_MIN)
        )
    )
    readings = F.try_variant_get(doc, devices_path, "array<variant>")
    reading_reason = F.try_element_at(
        F.filter(F.transform(readings, _reading_reason), lambda r: r.isNotNull()), F.lit(1)
    )
    data_type = F.schema_of_variant(t("dataValue"))
    reason = (
        F.when(F.col("raw").isNull() | (F.length("raw") == 0), F.lit(Reason.EMPTY))
        .when(~F.col("utf8"), F.lit(Reason.NOT_UTF8))
        .when(~F.coalesce(F.col("json"), F.lit(False)), F.lit(Reason.NOT_JSON))
        .when(~t("isObject"), F.lit(Reason.NOT_OBJECT))
    )
    for name in ("eventId", "eventOffset", "eventTime"):
        reason = reason.when(_absent(t(f"t_{name}")), F.lit(Reason.missing(name)))
    for name, expected in EVENT_SCALARS.items():
        reason = reason.when(
            ~_absent(t(f"t_{name}")) & (t(f"t_{name}") != F.lit(expected)),
            F.lit(Reason.wrong_type(name, _EXPECTED[expected])),
        )
    reason = (
        reason.when(t("t_eventTime") != F.lit(JSON_STRING), F.lit(Reason.wrong_type("eventTime", "string")))
        .when(~t("eventTimeText").rlike(EVENT_TIME_PATTERN) | t("eventTs").isNull(), F.lit(Reason.BAD_EVENT_TIME))
        # data.devices is absent when data is not an object: only then look at data's own type.
        .when(
            t("t_devices").isNull() & ~_absent(data_type) & ~data_type.startswith(JSON_OBJECT_PREFIX),
            F.lit(Reason.wrong_type("data", "object")),
        )
        .when(devices_ok, F.lit(None).cast("string"))
        .when(~t("t_devices").startswith(JSON_ARRAY_PREFIX), F.lit(Reason.wrong_type("data.devices", "array")))
        .otherwise(reading_reason)
    )
    f = _fast_fields()
    is_fast = F.col("canonical")

    def pick(fast_value: Column, strict_value: Column) -> Column:
        return F.when(is_fast, fast_value).otherwise(strict_value)

    classified = (
        F.col("partition"),
        F.col("offset"),
        F.when(~is_fast, reason).alias("reason"),
        _rejected_value().alias("value"),
        pick(f["eventId"], F.try_variant_get(doc, "$.eventId", "string")).alias("eventId"),
        pick(f["eventOffset"], F.try_variant_get(doc, "$.eventOffset", "bigint")).alias("eventOffset"),
        pick(f["eventPublisher"], F.try_variant_get(doc, "$.eventPublisher", "string")).alias("eventPublisher"),
        pick(f["customerId"], F.try_variant_get(doc, "$.customerId", "string")).alias("customerId"),
        pick(f["eventTime"], F.date_format(F.col("eventTs"), SPARK_EVENT_TIME_FORMAT)).alias("eventTime"),
        pick(f["devices"], F.col("devices")).alias("devices"),
    )
    return (tuple(map(F.col, PREPARED_COLUMNS)), *parsed, typed, classified)


@dataclass(frozen=True)
class RowsColumns:
    """What `rows` and the sink's counts apply to a classified batch, as Column objects built once.

    The sink applies them to every micro-batch. Each pyspark function call is a py4j round trip in
    which the JVM looks the class up through every package py4j imports (a class-loader miss per
    package, each a scan of ~250 jars): building these ~50 Columns per micro-batch cost about a
    third of a small batch's time. Column objects are immutable expressions: one set serves every
    DataFrame with classify's columns."""

    explode: tuple[Column, ...]
    select: tuple[Column, ...]
    counts: tuple[Column, ...]
    not_canonical: Column

    @classmethod
    def build(cls) -> RowsColumns:
        # Two projections, not four: each DataFrame step costs an analysis of classify's whole
        # plan (posexplode of null, a rejected record, gives no row).
        explode = (
            *map(F.col, ("partition", "offset", "eventId", "eventOffset", "eventPublisher", "customerId", "eventTime")),
            F.posexplode(F.when(F.col("reason").isNull(), F.col("devices"))).alias("deviceIndex", "reading"),
        )
        select = (
            F.col("partition").alias("kafkaPartition"),
            F.col("offset").alias("kafkaOffset"),
            *map(F.col, ("eventId", "eventOffset", "eventPublisher", "customerId", "eventTime", "deviceIndex")),
            F.col("reading.deviceId").alias("deviceId"),
            F.col("reading.temperature").alias("temperature"),
            F.col("reading.measure").alias("measure"),
            F.col("reading.status").alias("status"),
        )
        return cls(explode, select, tuple(count_columns()), not_canonical_count())


def rows(classified: DataFrame, columns: RowsColumns | None = None) -> DataFrame:
    """One row per device reading of the valid events, columns exactly BATCH_ROW_COLUMNS (the Kafka
    partition and offset of its record, then ROW_COLUMNS), in Kafka (partition, offset) order then
    deviceIndex (0-based position in data.devices). `columns`: prebuilt (RowsColumns.build())."""
    c = columns or RowsColumns.build()
    return classified.select(*c.explode).select(*c.select)


def rejects(classified: DataFrame, batch_id: int) -> DataFrame:
    """The rejected records, columns exactly REJECT_COLUMNS."""
    return (
        classified.filter(F.col("reason").isNotNull())
        .select(F.lit(batch_id).cast("long").alias("batchId"), "partition", "offset", "reason", "value")
        .select(*REJECT_COLUMNS)
    )


def count_columns() -> list[Column]:
    """The aggregates the progress reports, over classify's output (for DataFrame.observe or agg):
    inputRows, rowsOut, rejects, eventsWithoutReadings."""
    valid = F.col("reason").isNull()
    readings = F.when(F.col("devices").isNull(), F.lit(0)).otherwise(F.size("devices"))
    return [
        F.count(F.lit(1)).alias("inputRows"),
        F.coalesce(F.sum(F.when(valid, readings)), F.lit(0)).cast("long").alias("rowsOut"),
        F.count_if(~valid).alias("rejects"),
        F.count_if(valid & (readings == 0)).alias("eventsWithoutReadings"),
    ]


def batch_counts(classified: DataFrame) -> DataFrame:
    """A one-row DataFrame: inputRows, rowsOut, rejects, eventsWithoutReadings."""
    return classified.agg(*count_columns())
