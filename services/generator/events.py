"""Making device events: pure functions of a random generator and a clock (no I/O).

`make_event` builds the event as a dict (the readable reference). `EventEncoder.encode` makes the
same event straight into Kafka key/value bytes from precomputed fragments (the hot path); both draw
from the random generator in the same order, so with the same seed they make the same event, and
the encoded bytes equal `orjson.dumps(make_event(...))`.

Draw order per event: eventId (128 random bits), customer, number of readings, each reading. With a
seeded `random.Random`, everything but eventTime and eventOffset is reproducible."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import product
from typing import Final

import orjson

from contract.csv import EVENT_TIME_FORMAT
from contract.events import (
    CUSTOMER_IDS,
    DEVICE_IDS,
    EVENT_PUBLISHER,
    MAX_DEVICES_PER_EVENT,
    MEASURE,
    STATUSES,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
)
from services.generator.keys import PartitionKey, key_of

#: Every possible reading, in a fixed order; a reading is drawn uniformly from this table.
READINGS: Final[tuple[dict, ...]] = tuple(
    {"deviceId": d, "temperature": t, "measure": MEASURE, "status": s}
    for d, t, s in product((*DEVICE_IDS, None), range(TEMPERATURE_MIN, TEMPERATURE_MAX + 1), (*STATUSES, None))
)
_N_READINGS: Final = len(READINGS)
_N_CUSTOMERS: Final = len(CUSTOMER_IDS)
_N_COUNTS: Final = MAX_DEVICES_PER_EVENT + 1

_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET: Final = (4 << 76) | (0x8000 << 48)


def uuid4_from_bits(bits: int) -> str:
    """A UUID v4 string from 128 random bits (version and variant bits forced)."""
    h = ((bits & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_event_time(now: datetime) -> str:
    """ISO-8601 UTC with microseconds, e.g. 2026-11-28T03:33:11.123456Z."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return now.strftime(EVENT_TIME_FORMAT)


def draw_content(rng: random.Random) -> tuple[str, str, list[dict]]:
    """An event's random content: (eventId, customerId, readings), in the documented draw order."""
    rnd = rng.random
    event_id = uuid4_from_bits(rng.getrandbits(128))
    customer = CUSTOMER_IDS[int(rnd() * _N_CUSTOMERS)]
    n = int(rnd() * _N_COUNTS)
    return event_id, customer, [dict(READINGS[int(rnd() * _N_READINGS)]) for _ in range(n)]


def make_event(rng: random.Random, now: datetime, offset: int) -> dict:
    """One valid event made at `now` with eventOffset `offset`."""
    event_id, customer, devices = draw_content(rng)
    return event_doc(event_id, offset, customer, devices, format_event_time(now))


def event_doc(event_id: str, offset: int, customer: str, devices: list[dict], event_time: str) -> dict:
    """An event as a dict, fields in document order."""
    return {
        "eventId": event_id,
        "eventOffset": offset,
        "eventPublisher": EVENT_PUBLISHER,
        "customerId": customer,
        "data": {"devices": devices},
        "eventTime": event_time,
    }


class EventClock:
    """eventTime strings for "now", formatting the date/second part once per second."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._sec = -1
        self._prefix = ""

    def now(self) -> str:
        sec, ns = divmod(self._clock_ns(), 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{ns // 1000:06d}Z"


class EventEncoder:
    """Makes events directly as Kafka (key, value) bytes; the same draws as `make_event`. The key is
    the event's customerId, the deviceId of its first reading naming one, or None (keys.py)."""

    def __init__(self, key_by: PartitionKey = "customerId") -> None:
        self._customers = tuple(c.encode() for c in CUSTOMER_IDS)
        self._prefixes = tuple(
            f',"eventPublisher":"{EVENT_PUBLISHER}","customerId":"{c}","data":{{"devices":[' for c in CUSTOMER_IDS
        )
        self._readings = tuple(orjson.dumps(r).decode() for r in READINGS)
        self._device_keys = tuple(None if r["deviceId"] is None else r["deviceId"].encode() for r in READINGS)
        self._key_by = key_by

    def encode(self, rng: random.Random, event_time: str, offset: int) -> tuple[bytes | None, bytes]:
        rnd = rng.random
        h = ((rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big").hex()
        c = int(rnd() * _N_CUSTOMERS)
        n = int(rnd() * _N_COUNTS)
        picks = [int(rnd() * _N_READINGS) for _ in range(n)] if n else []
        if n:
            readings = self._readings
            body = ",".join([readings[i] for i in picks])
        else:
            body = ""
        value = (
            f'{{"eventId":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}","eventOffset":{offset}'
            f'{self._prefixes[c]}{body}]}},"eventTime":"{event_time}"}}'
        )
        by = self._key_by
        if by == "customerId":
            key: bytes | None = self._customers[c]
        elif by == "none":
            key = None
        else:  # deviceId: the first reading naming a device; None when no reading does
            key = next((k for i in picks if (k := self._device_keys[i]) is not None), None)
        return key, value.encode()


# ---- deliberately malformed records (invalid_ratio) ------------------------------------------

#: Each kind is something the Spark job must reject (issue 4): not UTF-8, not JSON, not an object,
#: a required field missing, a field of the wrong type, an empty value. None of them carries a
#: usable eventOffset, so the valid events of a run keep consecutive offsets.
INVALID_KINDS: Final = (
    "not_utf8",
    "not_json",
    "not_object",
    "missing_event_id",
    "missing_event_offset",
    "missing_event_time",
    "wrong_types",
    "empty",
)


def make_invalid(
    rng: random.Random, now: datetime, key_by: PartitionKey = "customerId"
) -> tuple[bytes | None, bytes, str]:
    """One malformed record: (key, value, kind). Keyed like a valid event (its content drawn the same way)."""
    kind = INVALID_KINDS[int(rng.random() * len(INVALID_KINDS))]
    event = make_event(rng, now, 0)
    key = key_of(event, key_by)
    if kind == "not_utf8":
        value = b'{"eventId":"\xff\xfe\xfd","eventOffset":\xc3\x28}'
    elif kind == "not_json":
        value = orjson.dumps(event)[: 20 + int(rng.random() * 20)]  # truncated document
    elif kind == "not_object":
        value = orjson.dumps([event["eventId"], event["customerId"], event["data"]])
    elif kind == "empty":
        value = b""
    else:
        if kind == "missing_event_id":
            del event["eventId"], event["eventOffset"]
        elif kind == "missing_event_offset":
            del event["eventOffset"]
        elif kind == "missing_event_time":
            del event["eventTime"], event["eventOffset"]
        else:  # wrong_types
            event["eventId"] = int(rng.random() * 1_000_000)
            event["eventOffset"] = "not-a-number"
            event["eventTime"] = 1_700_000_000
            event["data"] = "devices"
        value = orjson.dumps(event)
    return key, value, kind
