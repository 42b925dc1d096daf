"""The device event (contract.events) as explicit Spark types.

`EVENT_SCHEMA` is the typed shape of a valid event; the transformation extracts each field with
exactly these types after checking the JSON type of every field itself (see transform.py: Spark's
own JSON readers coerce silently, e.g. 123 into "123" for a string field)."""

from __future__ import annotations

from typing import Final

from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

READING_SCHEMA: Final = StructType(
    [
        StructField("deviceId", StringType(), nullable=True),
        StructField("temperature", IntegerType(), nullable=True),
        StructField("measure", StringType(), nullable=True),
        StructField("status", StringType(), nullable=True),
    ]
)

DATA_SCHEMA: Final = StructType([StructField("devices", ArrayType(READING_SCHEMA, containsNull=False), True)])

EVENT_SCHEMA: Final = StructType(
    [
        StructField("eventId", StringType(), nullable=False),
        StructField("eventOffset", LongType(), nullable=False),
        StructField("eventPublisher", StringType(), nullable=True),
        StructField("customerId", StringType(), nullable=True),
        StructField("data", DATA_SCHEMA, nullable=True),
        StructField("eventTime", TimestampType(), nullable=False),
    ]
)

#: The JSON type each field must have when present and not null, as reported by Spark's
#: schema_of_variant ("BIGINT" for any JSON integer that fits in 64 bits).
JSON_STRING: Final = "STRING"
JSON_INTEGER: Final = "BIGINT"
JSON_OBJECT_PREFIX: Final = "OBJECT"
JSON_ARRAY_PREFIX: Final = "ARRAY"
JSON_NULL: Final = "VOID"

#: Top-level scalar fields and their JSON type (data and eventTime are checked apart).
EVENT_SCALARS: Final = {
    "eventId": JSON_STRING,
    "eventOffset": JSON_INTEGER,
    "eventPublisher": JSON_STRING,
    "customerId": JSON_STRING,
}
#: Fields of one reading and their JSON type.
READING_SCALARS: Final = {
    "deviceId": JSON_STRING,
    "temperature": JSON_INTEGER,
    "measure": JSON_STRING,
    "status": JSON_STRING,
}
