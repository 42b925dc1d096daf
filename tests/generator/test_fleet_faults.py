"""The fleet's invariants and the record maker's faults, as pure logic: a device belongs to one
customer, temperature steps are bounded, only allowed status transitions happen, devices go silent
and come back; the same seed gives the same content, also when a run continues from an index."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import orjson
import pytest

from contract.events import TEMPERATURE_MAX, TEMPERATURE_MIN
from contract.generator_options import FaultOptions, FleetOptions, StatusMachine
from contract.ledger import EXPECTED_REASONS, InjectedFault
from services.generator.events import INVALID_KINDS, EventEncoder, make_invalid
from services.generator.faults import RecordMaker, device_skew_s
from services.generator.fleet import ERROR, STANDBY, SUCCESS, Fleet

NS = 1_800_000_000 * 10**9


def _reports(opts: FleetOptions, seed: int, n: int) -> tuple[Fleet, list[tuple[str, list[dict]]]]:
    fleet = Fleet(opts, seed)
    rng = random.Random(seed)
    return fleet, [fleet.report(rng) for _ in range(n)]


def test_each_device_belongs_to_one_customer_stably() -> None:
    opts = FleetOptions(customers=7, devices_per_customer=5)
    fleet, reports = _reports(opts, 11, 5000)
    owner = fleet.owner()
    assert len(owner) == 35 and len({d for c in fleet.devices.values() for d in (x.id for x in c)}) == 35
    for customer, readings in reports:
        assert all(owner[r["deviceId"]] == customer for r in readings)
    assert Fleet(opts, 11).owner() == owner  # the seed decides the fleet
    assert Fleet(opts, 12).owner() != owner


@pytest.mark.parametrize("step", [0, 1, 3])
def test_temperature_walks_in_bounded_steps(step: int) -> None:
    _, reports = _reports(FleetOptions(customers=3, devices_per_customer=4, max_temperature_step=step), 5, 5000)
    last: dict[str, int] = {}
    moved = 0
    for _, readings in reports:
        for r in readings:
            t = r["temperature"]
            assert TEMPERATURE_MIN <= t <= TEMPERATURE_MAX
            if r["deviceId"] in last:
                assert abs(t - last[r["deviceId"]]) <= step
                moved += t != last[r["deviceId"]]
            last[r["deviceId"]] = t
    assert (moved > 0) == (step > 0)


def test_status_moves_only_as_allowed() -> None:
    machine = StatusMachine(
        success_to_error=0.1,
        success_to_standby=0.0,
        error_to_success=0.0,
        error_to_standby=0.3,
        standby_to_success=0.2,
        standby_to_error=0.0,
    )
    opts = FleetOptions(customers=4, devices_per_customer=3, status=machine, silent_probability=0.0)
    _, reports = _reports(opts, 9, 5000)
    allowed = {(SUCCESS, ERROR), (ERROR, STANDBY), (STANDBY, SUCCESS)}
    last: dict[str, str] = {}
    seen = set()
    for _, readings in reports:
        for r in readings:
            prev = last.get(r["deviceId"])
            if prev is not None and prev != r["status"]:
                seen.add((prev, r["status"]))
            last[r["deviceId"]] = r["status"]
    assert seen == allowed


def test_devices_go_silent_and_come_back() -> None:
    opts = FleetOptions(customers=1, devices_per_customer=4, silent_probability=0.1, wake_probability=0.2)
    fleet, reports = _reports(opts, 3, 3000)
    devices = {d.id for d in fleet.devices["CI00100"]}
    gaps = 0
    for dev in devices:
        present = [any(r["deviceId"] == dev for r in readings) for _, readings in reports]
        gaps += sum(1 for a, b in itertools.pairwise(present) if not a and b)  # came back
    assert gaps > 10
    assert any(len(readings) < 4 for _, readings in reports)


def _content(value: bytes) -> dict | bytes:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if isinstance(doc, dict):
        doc.pop("eventTime", None)
        doc.pop("eventOffset", None)
    return doc


ALL_FAULTS = FaultOptions(
    invalid_ratio=0.05,
    late_ratio=0.1,
    max_lateness_s=60,
    skewed_devices_ratio=0.3,
    max_skew_s=20,
    resend_ratio=0.05,
)


def _make(maker: RecordMaker, n: int, start_offset: int = 0) -> list[tuple[bytes, bytes, int | None, dict | None]]:
    counter = iter(range(start_offset, start_offset + 10 * n))
    return [maker.make(lambda: next(counter), NS) for _ in range(n)]


@pytest.mark.parametrize("fleet", [None, FleetOptions(customers=5, devices_per_customer=3)])
def test_same_seed_same_content_and_continuing_from_an_index(fleet: FleetOptions | None) -> None:
    full = _make(RecordMaker(42, fleet=fleet, faults=ALL_FAULTS), 3000)
    again = _make(RecordMaker(42, fleet=fleet, faults=ALL_FAULTS), 3000, start_offset=500_000)
    assert [_content(v) for _, v, _, _ in full] == [_content(v) for _, v, _, _ in again]
    # a restart mid-run: a new maker continuing at record 1234 makes what the first made from there
    resumed = RecordMaker(42, fleet=fleet, faults=ALL_FAULTS)
    resumed.skip(1234)
    rest = _make(resumed, 3000 - 1234, start_offset=900_000)
    assert [_content(v) for _, v, _, _ in full[1234:]] == [_content(v) for _, v, _, _ in rest]
    assert [f and f.kind for *_, f in full[1234:]] == [f and f.kind for *_, f in rest]
    other = _make(RecordMaker(43, fleet=fleet, faults=ALL_FAULTS), 100)
    assert [_content(v) for _, v, _, _ in full[:100]] != [_content(v) for _, v, _, _ in other]


@pytest.mark.parametrize("invalid_ratio", [0.0, 0.2])
def test_only_invalid_ratio_gives_the_fast_paths_content(invalid_ratio: float) -> None:
    maker = RecordMaker(5, invalid_ratio=invalid_ratio)
    rng = random.Random(5)
    enc = EventEncoder()
    for k in range(500):  # the run loop's fast path, draw for draw
        _key, value, _off, fault = maker.make(lambda k=k: k, NS)
        if invalid_ratio and rng.random() < invalid_ratio:
            _k, fast, _kind = make_invalid(rng, datetime.fromtimestamp(0, UTC))
            assert fault is not None and fault.invalid_kind == _kind
        else:
            _k2, fast = enc.encode(rng, "x", k)
            assert fault is None
        assert _content(value) == _content(fast)


def test_every_fault_kind_with_its_ledger_fields() -> None:
    records = _make(RecordMaker(7, fleet=FleetOptions(customers=3), faults=ALL_FAULTS), 4000)
    by_kind: dict[str, list[InjectedFault]] = {}
    events = {}
    for _key, value, off, fault in records:
        if off is not None:
            events[off] = orjson.loads(value)
        if fault is not None:
            by_kind.setdefault(fault.kind, []).append(fault)
    assert set(by_kind) == {"invalid", "late", "skewed", "resend"}
    assert {f.invalid_kind for f in by_kind["invalid"]} == set(INVALID_KINDS)
    assert all(f.expected_reason == EXPECTED_REASONS[f.invalid_kind] for f in by_kind["invalid"])
    for f in by_kind["late"]:
        assert 0 < f.lateness_s <= 60 and events[f.event_offset]["eventTime"] == f.event_time
    for f in by_kind["skewed"]:
        assert f.skew_s == device_skew_s(7, f.device_id, 0.3, 20) != 0
        assert events[f.event_offset]["data"]["devices"][0]["deviceId"] == f.device_id
    for f in by_kind["resend"]:
        original, copy = events[f.original_event_offset], events[f.event_offset]
        assert original["eventId"] == copy["eventId"] == f.event_id and original["data"] == copy["data"]
        assert f.event_offset != f.original_event_offset and f.readings > 0
