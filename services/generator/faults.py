"""Making a run's records when it asks for more than the plain fast path: a fleet, faults, a ledger
or a first index. Pure: a random generator, a clock value passed in, no I/O.

Each record made is a valid event, a malformed record (invalid_ratio), or a re-sent event (the
same content as an earlier event, produced again with a new eventOffset). A valid event may be
late (its eventTime up to max_lateness_s in the past, so it arrives out of order) and carries its
first device's clock skew. Every fault comes back with its ledger fields.

Draw order per record, from the run's one seeded generator: [invalid?] [resend?, which] content
[late?, how late]. A draw is only made when its ratio is above 0, so with only invalid_ratio the
records are those of the fast path (services/generator/events.py) for the same seed. Clock skews
are a function of (seed, deviceId), not draws. The content of record k (all but eventTime and
eventOffset) therefore depends on the seed and k only: `skip(k)` replays the draws of the first k
records, which is how a run continues after a restart (first_index)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from contract.generator_options import FaultOptions, FleetOptions
from contract.ledger import EXPECTED_REASONS, InjectedFault
from services.generator.events import draw_content, event_doc, make_invalid, uuid4_from_bits
from services.generator.fleet import Fleet
from services.generator.keys import PartitionKey, key_of

RESEND_HISTORY = 1000  # a re-sent event is one of the last this many events with readings


class EventTimes:
    """eventTime strings (ISO-8601 UTC, microseconds) for wall clocks in nanoseconds since the
    epoch, formatting the date/second part once per distinct second in a row."""

    def __init__(self) -> None:
        self._sec = None
        self._prefix = ""

    def __call__(self, ns: int) -> str:
        sec, rest = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{rest // 1000:06d}Z"


def device_skew_s(seed: int, device_id: str, ratio: float, max_skew_s: float) -> float:
    """The device's clock skew in seconds (0 for most devices): a function of (seed, deviceId)."""
    if ratio <= 0 or max_skew_s <= 0:
        return 0.0
    r = random.Random(f"skew:{seed}:{device_id}")
    if r.random() >= ratio:
        return 0.0
    return round((r.random() * 2 - 1) * max_skew_s, 6)


class RecordMaker:
    def __init__(
        self,
        seed: int,
        *,
        invalid_ratio: float = 0.0,
        fleet: FleetOptions | None = None,
        faults: FaultOptions | None = None,
        key_by: PartitionKey = "customerId",
    ) -> None:
        self.seed = seed
        self.key_by = key_by
        self.rng = random.Random(seed)
        f = faults or FaultOptions()
        self.faults = f
        self.invalid_ratio = max(invalid_ratio, f.invalid_ratio)
        self.fleet = Fleet(fleet, seed) if fleet is not None else None
        self.index = 0  # records made so far (the next record's index)
        self._history: deque[dict] = deque(maxlen=RESEND_HISTORY)
        self._skews: dict[str, float] = {}
        self._times = EventTimes()

    def skew_of(self, device_id: str) -> float:
        s = self._skews.get(device_id)
        if s is None:
            s = self._skews[device_id] = device_skew_s(
                self.seed, device_id, self.faults.skewed_devices_ratio, self.faults.max_skew_s
            )
        return s

    def skip(self, n: int, now_ns: int = 0) -> None:
        """Replay the draws of the next `n` records without encoding them. Their eventOffsets are
        unknown here (None): a later re-send of one of them says so in its ledger line."""
        for _ in range(n):
            self.make(lambda: None, now_ns, dry=True)  # type: ignore[arg-type,return-value]

    def make(
        self, take_offset: Callable[[], int], now_ns: int, *, dry: bool = False
    ) -> tuple[bytes | None, bytes, int | None, InjectedFault | None]:
        """The next record: (key, value, eventOffset or None for a malformed record, its fault or
        None). `dry`: the same draws, no value (b"") and no eventTime."""
        rng, f = self.rng, self.faults
        index = self.index
        self.index += 1
        if self.invalid_ratio and rng.random() < self.invalid_ratio:
            key, value, kind = make_invalid(rng, datetime.fromtimestamp(now_ns / 1e9, UTC), self.key_by)
            fault = InjectedFault(
                kind="invalid", index=index, invalid_kind=kind, expected_reason=EXPECTED_REASONS[kind]
            )
            return key, value, None, fault
        if f.resend_ratio and rng.random() < f.resend_ratio and self._history:
            original = self._history[int(rng.random() * len(self._history))]
            off = take_offset()
            event = {**original, "eventOffset": off}
            if dry:
                return b"", b"", off, None
            fault = InjectedFault(
                kind="resend",
                index=index,
                event_offset=off,
                event_id=event["eventId"],
                event_time=event["eventTime"],
                readings=len(event["data"]["devices"]),
                original_event_offset=original["eventOffset"],
            )
            return key_of(event, self.key_by), orjson.dumps(event), off, fault
        off = take_offset()
        if self.fleet is None:
            event_id, customer, readings = draw_content(rng)
        else:
            event_id = uuid4_from_bits(rng.getrandbits(128))
            customer, readings = self.fleet.report(rng)
        event = event_doc(event_id, off, customer, readings, "")
        devices: list[dict[str, Any]] = event["data"]["devices"]
        lateness = 0.0
        if f.late_ratio:
            late, how = rng.random() < f.late_ratio, rng.random()
            if late and devices:  # an event without readings leaves no row to check
                lateness = round(how * f.max_lateness_s, 6)
        first_device = devices[0]["deviceId"] if devices else None
        skew = self.skew_of(first_device) if first_device is not None else 0.0
        if devices:
            self._history.append(event)
        if dry:
            event["eventTime"] = self._times(now_ns)  # a re-send of it after a restart is sent with this
            return b"", b"", off, None
        event["eventTime"] = self._times(now_ns + int((skew - lateness) * 1e9))
        fault = None
        if lateness or skew:
            fault = InjectedFault(
                kind="late" if lateness else "skewed",
                index=index,
                event_offset=off,
                event_id=event["eventId"],
                event_time=event["eventTime"],
                readings=len(devices),
                lateness_s=lateness or None,
                skew_s=skew or None,
                device_id=first_device if skew else None,
            )
        return key_of(event, self.key_by), orjson.dumps(event), off, fault
