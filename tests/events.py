"""Hand-made device events (the JSON the generator produces), for tests that need known ids,
offsets and times rather than seeded random ones (those are tests/spark_job/events.py)."""

from __future__ import annotations

from typing import Any

import orjson

EVENT_TIME = "2026-11-28T03:33:11.123456Z"


def device_event(event_id: str, offset: int, readings: list[dict[str, Any]], *, event_time: str = EVENT_TIME) -> bytes:
    """One valid event of customer CI00100, compact JSON as the generator writes it."""
    return orjson.dumps(
        {
            "eventId": event_id,
            "eventOffset": offset,
            "eventPublisher": "device",
            "customerId": "CI00100",
            "data": {"devices": readings},
            "eventTime": event_time,
        }
    )
