"""The device event: the JSON document the generator produces and the Spark job parses."""

from __future__ import annotations

from typing import Final

TOPIC_DEFAULT: Final = "device-events"

#: eventOffset of the first event ever produced into an empty topic.
FIRST_EVENT_OFFSET: Final = 10_000

EVENT_PUBLISHER: Final = "device"
CUSTOMER_IDS: Final = tuple(f"CI{n:05d}" for n in range(100, 121))  # CI00100 .. CI00120
DEVICE_IDS: Final = tuple(f"D{n:03d}" for n in range(1, 6))  # D001 .. D005
STATUSES: Final = ("SUCCESS", "ERROR", "STANDBY")
MEASURE: Final = "C"
TEMPERATURE_MIN: Final = 0
TEMPERATURE_MAX: Final = 30
MAX_DEVICES_PER_EVENT: Final = 3

#: Top-level fields of an event, in document order, with their JSON types.
EVENT_FIELDS: Final = {
    "eventId": "string (UUID v4)",
    "eventOffset": "integer",
    "eventPublisher": "string",
    "customerId": "string",
    "data": 'object {"devices": [reading, ...]}',
    "eventTime": "string (ISO-8601 UTC, microseconds)",
}
#: Fields of one reading in data.devices.
READING_FIELDS: Final = {
    "deviceId": "string or null",
    "temperature": "integer",
    "measure": "string",
    "status": "string or null",
}
#: An event without these is rejected downstream.
REQUIRED_FIELDS: Final = ("eventId", "eventOffset", "eventTime")
