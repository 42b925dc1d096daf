"""The generator as a test-data tool, as a real process against the real broker: a seeded fleet
run with faults gives the same content when run again, and when continued from an index after a
generator restart; its ledger points at the records it injected; a profile run reports the
requested rate next to the achieved one."""

from __future__ import annotations

import httpx
import pytest

from contract.ledger import read_ledger
from tests.documents import run_of
from tests.generator.conftest import GeneratorProcess, read_topic
from tests.generator.test_fleet_faults import _content

pytestmark = pytest.mark.integration

BODY = {
    "rate": 3000,
    "count": 2000,
    "seed": 5,
    "fleet": {"customers": 6, "devices_per_customer": 3},
    "faults": {"invalid_ratio": 0.03, "late_ratio": 0.05, "skewed_devices_ratio": 0.3, "resend_ratio": 0.03},
}


def _run(gen: GeneratorProcess, body: dict) -> str:
    resp = gen.post("/generator/start", body)
    assert resp.status_code == 202, resp.text
    st = gen.wait_state({"completed"}, 60)
    assert st.acknowledged == body["count"], st
    return run_of(resp).id


def _in_order(records: list) -> list:
    """Per partition, Kafka keeps the order the records were made in."""
    return sorted(records, key=lambda r: (r.partition, r.offset))


def test_same_seed_same_content_across_runs_and_a_restart(kafka, generator_factory, tmp_path) -> None:
    data = tmp_path / "data"
    t1, t2 = kafka.new_topic(), kafka.new_topic()
    gen = generator_factory(kafka.bootstrap, t1, data)
    first_id = _run(gen, BODY)
    first = _in_order(read_topic(kafka.bootstrap, t1))

    ledger = read_ledger(data / "generator" / "runs" / f"{first_id}.jsonl")
    assert ledger.end is not None and ledger.end.records == 2000
    assert {f.kind for f in ledger.faults} == {"invalid", "late", "skewed", "resend"}
    by_pos = {(r.partition, r.offset): r for r in first}
    for f in ledger.faults:
        r = by_pos[(f.partition, f.offset)]
        if f.kind == "invalid":
            assert r.event is None or "eventOffset" not in r.event or not isinstance(r.event["eventOffset"], int)
        else:
            assert r.event["eventOffset"] == f.event_offset and r.event["eventTime"] == f.event_time

    # the generator restarts; the run goes on from record 1200 into another topic
    assert gen.proc.stop() == 0
    gen2 = generator_factory(kafka.bootstrap, t2, data)
    _run(gen2, {**BODY, "count": 800, "first_index": 1200})
    rest = _in_order(read_topic(kafka.bootstrap, t2))
    # per partition (one customer -> one partition, order kept), the continued run is exactly the tail of the first run
    for part in {r.partition for r in rest}:
        tail = [_content(r.value) for r in first if r.partition == part]
        mine = [_content(r.value) for r in rest if r.partition == part]
        assert tail[len(tail) - len(mine) :] == mine


def test_profile_run_reports_requested_and_achieved(kafka, generator_factory) -> None:
    gen = generator_factory(kafka.bootstrap, kafka.new_topic())
    resp = gen.post(
        "/generator/start", {"profile": {"kind": "ramp", "from_rate": 200, "to_rate": 400, "over_s": 2}, "count": 900}
    )
    assert resp.status_code == 202, resp.text
    assert run_of(resp).params.profile is not None and run_of(resp).params.profile.kind == "ramp"
    st = gen.wait_state({"completed"}, 60)
    assert st.acknowledged == 900
    metrics = httpx.get(f"{gen.url}/metrics", timeout=5).text
    assert "generator_target_rate_events_per_second" in metrics and "generator_rate_events_per_second" in metrics
    assert "rate_requested" in st.model_fields_set
