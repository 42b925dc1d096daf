"""Record keys and the partition each key goes to (GENERATOR_PARTITION_KEY). Pure: no I/O.

The key decides what Kafka keeps in order: records of one key go to one partition, in the order
they were made. It also decides how evenly the partitions are loaded, and so how many Spark tasks
of a micro-batch have work (a micro-batch reads every partition's new records, one task each):

- `customerId` (the default): order per customer. 21 customers, so at most 21 busy partitions,
  and on 3 partitions murmur2 puts ~48% of the records on one of them.
- `deviceId`: order per device, for the events whose first reading names it (an event is one
  record, so a device that is not the first reading of an event is not ordered by this key). An
  event naming no device (no readings, or its readings have no deviceId) gets a null key.
  The default event format has only 5 devices: this spreads *worse* than customerId; it is for
  a fleet (POST /generator/start `fleet`), whose devices are many.
- `none`: a null key, no order beyond the topic's offsets within a partition; records spread
  evenly (round robin, see `KeyPartitioner`).

Exactly-once downstream is keyed by (topic, partition, offset) and the eventOffset, never by the
record key: the key changes placement and order, not what is delivered."""

from __future__ import annotations

from itertools import count
from typing import Final, Literal, get_args

from aiokafka.partitioner import murmur2

PartitionKey = Literal["customerId", "deviceId", "none"]
PARTITION_KEYS: Final[tuple[str, ...]] = get_args(PartitionKey)


def first_device_id(readings: list[dict]) -> str | None:
    """The deviceId of the first reading that names a device, None when none does."""
    for r in readings:
        device = r.get("deviceId") if isinstance(r, dict) else None
        if isinstance(device, str):
            return device
    return None


def key_of(event: dict, key_by: PartitionKey) -> bytes | None:
    """The record key of an event made as a dict (faults, fleet, malformed records)."""
    if key_by == "customerId":
        return str(event["customerId"]).encode()
    if key_by == "none":
        return None
    data = event.get("data")
    readings = data.get("devices") if isinstance(data, dict) else None
    device = first_device_id(readings) if isinstance(readings, list) else None
    return None if device is None else device.encode()


class KeyPartitioner:
    """The partition of each record key, as the generator places its batches (it sends whole
    batches to a partition it picks, so Kafka's partitioner is not consulted).

    A key goes where Kafka's default partitioner puts it (murmur2, as aiokafka's and the Java
    client's), so a consumer or another producer agrees on it; computed once per distinct key (keys
    are customers and devices: a bounded set). A null key goes round robin, one record after
    another over every partition: each micro-batch then reads an equal share from every partition.
    (aiokafka's own DefaultPartitioner picks a random partition per null-keyed record; the Java
    client's sticky partitioner fills one partition's batch before moving on, which loads the
    partitions unevenly at low rates, a lingered batch at a time.)"""

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self._known: dict[bytes, int] = {}
        self._next = count()

    def __call__(self, key: bytes | None) -> int:
        if key is None:
            return next(self._next) % self.partitions
        part = self._known.get(key)
        if part is None:
            part = self._known[key] = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        return part
