"""The generator as a real process against the real broker."""

from __future__ import annotations

from collections import Counter

import pytest

from contract.api import RunConflict
from contract.events import FIRST_EVENT_OFFSET
from services.generator.ledger import oldest_past
from tests.documents import run_of
from tests.generator.conftest import read_topic
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _offsets(records: list) -> list[int]:
    """eventOffsets of the valid events (malformed records carry none, or not as an integer)."""
    return sorted(o for r in records if (e := r.event) is not None and type(o := e.get("eventOffset")) is int)


def test_counted_run_lands_exactly_count_then_restart_continues(kafka, generator_factory) -> None:
    topic = kafka.new_topic()
    gen = generator_factory(kafka.bootstrap, topic)
    st = gen.status()
    assert st.state == "idle" and st.topic == topic

    resp = gen.post("/generator/start", {"rate": 4000, "count": 3000, "seed": 11})
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert run["state"] == "running" and run["params"]["count"] == 3000 and run["params"]["seed"] == 11

    st = gen.wait_state({"completed"}, 30)
    assert (st.sent, st.acknowledged, st.delivery_errors) == (3000, 3000, 0)
    assert (st.offset_first, st.offset_last) == (FIRST_EVENT_OFFSET, FIRST_EVENT_OFFSET + 2999)
    assert st.run.ended_at is not None

    records = read_topic(kafka.bootstrap, topic)
    assert len(records) == 3000
    assert _offsets(records) == list(range(FIRST_EVENT_OFFSET, FIRST_EVENT_OFFSET + 3000))
    for r in records:
        assert r.key == r.event["customerId"].encode()
    # one customer -> one partition (order kept per customer)
    by_key = {}
    for r in records:
        assert by_key.setdefault(r.key, r.partition) == r.partition

    # a second run, with malformed records mixed in: counted apart, valid offsets continue
    resp = gen.post("/generator/start", {"rate": 5000, "count": 1000, "invalid_ratio": 0.2, "seed": 3})
    assert resp.status_code == 202, resp.text
    st = gen.wait_state({"completed"}, 30)
    assert st.acknowledged == 1000 and 100 < st.invalid < 300
    valid = 1000 - st.invalid
    assert (st.offset_first, st.offset_last) == (13_000, 13_000 + valid - 1)

    # restart the service (SIGTERM, clean): the next run continues right after
    assert gen.proc.stop() == 0
    gen2 = generator_factory(kafka.bootstrap, topic)
    resp = gen2.post("/generator/start", {"rate": 5000, "count": 500})
    assert resp.status_code == 202
    st = gen2.wait_state({"completed"}, 30)
    assert st.offset_first == 13_000 + valid

    records = read_topic(kafka.bootstrap, topic)
    assert len(records) == 4500
    offs = _offsets(records)
    assert offs == list(range(FIRST_EVENT_OFFSET, FIRST_EVENT_OFFSET + len(offs)))


def test_stop_flushes_rate_change_and_conflict(kafka, generator_factory, tmp_path) -> None:
    topic = kafka.new_topic()
    gen = generator_factory(kafka.bootstrap, topic)
    run = gen.post("/generator/start", {"rate": 3000}).json()
    # a second start names the active run
    resp = gen.post("/generator/start", {"rate": 10})
    assert resp.status_code == 409
    assert run["id"] in resp.json()["detail"]
    conflict = RunConflict.model_validate(resp.json())  # the documented 409, naming the run
    assert conflict.run is not None and conflict.run.id == run["id"] and conflict.run.state == "running"

    resp = gen.put("/generator/rate", {"rate": 6000})
    assert resp.status_code == 200 and run_of(resp).params.rate == 6000
    wait_for(lambda: gen.status().acknowledged > 2000, 30, "events acknowledged", logs=[gen.proc.log_file])

    resp = gen.post("/generator/stop")
    assert resp.status_code == 200
    final = resp.json()
    assert final["state"] == "stopped"
    assert final["sent"] == final["acknowledged"] > 2000
    records = read_topic(kafka.bootstrap, topic)
    assert len(records) == final["acknowledged"]
    offs = _offsets(records)
    assert offs == list(range(final["offset_first"], final["offset_last"] + 1))

    # SIGKILL mid-run: the next process never reuses an offset (a gap is fine)
    gen.post("/generator/start", {"rate": 2000})
    wait_for(lambda: gen.status().acknowledged > 500, 30, "second run acknowledged", logs=[gen.proc.log_file])
    gen.proc.kill()
    gen2 = generator_factory(kafka.bootstrap, topic)
    gen2.post("/generator/start", {"rate": 5000, "count": 200})
    gen2.wait_state({"completed"}, 30)
    counts = Counter(_offsets(read_topic(kafka.bootstrap, topic)))
    assert max(counts.values()) == 1, "an eventOffset was reused"

    # wiped state folder, same (non-empty) topic: offsets continue after what is in Kafka
    gen2.proc.stop()
    newest = max(counts)
    gen3 = generator_factory(kafka.bootstrap, topic, data_dir=tmp_path / "wiped")
    gen3.post("/generator/start", {"rate": 5000, "count": 10})
    st = gen3.wait_state({"completed"}, 30)
    assert st.offset_first == newest + 1


def test_broker_outage_degrades_then_recovers_exactly_once(private_kafka, generator_factory) -> None:
    topic = private_kafka.new_topic()
    gen = generator_factory(private_kafka.bootstrap, topic, GENERATOR_DEGRADED_AFTER_S="1")
    count = 4000
    gen.post("/generator/start", {"rate": 400, "count": count, "seed": 5})
    wait_for(lambda: gen.status().acknowledged > 400, 30, "first acks", logs=[gen.proc.log_file])

    private_kafka.stop()
    st = gen.wait_state({"degraded"}, 30)
    assert st.last_error
    assert st.run.state == "degraded"

    private_kafka.start()
    st = gen.wait_state({"completed"}, 120)
    assert st.acknowledged == count
    records = read_topic(private_kafka.bootstrap, topic)
    offs = _offsets(records)
    assert len(records) == count
    assert offs == list(range(st.offset_first, st.offset_first + count)), "lost or duplicated events"


def test_lost_state_after_a_run_of_malformed_records_never_reuses_an_offset(kafka, generator_factory, tmp_path) -> None:
    """The newest records of every partition are malformed (no eventOffset), far more than one
    window of them: the header they carry still tells where the offsets are."""
    topic = kafka.new_topic()
    data = tmp_path / "gen-data"
    gen = generator_factory(kafka.bootstrap, topic, data_dir=data)
    gen.post("/generator/start", {"rate": 5000, "count": 300, "seed": 1})
    first = gen.wait_state({"completed"}, 30)
    gen.post("/generator/start", {"rate": 5000, "count": 600, "invalid_ratio": 1.0, "seed": 2})
    assert gen.wait_state({"completed"}, 30).invalid == 600
    gen.proc.stop()

    (data / "generator" / "state.json").unlink()  # the offsets file lost
    gen2 = generator_factory(kafka.bootstrap, topic, data_dir=data)
    gen2.post("/generator/start", {"rate": 5000, "count": 100, "seed": 3})
    st = gen2.wait_state({"completed"}, 30)
    assert st.offset_first > first.offset_last
    counts = Counter(_offsets(read_topic(kafka.bootstrap, topic)))
    assert len(counts) == 400 and max(counts.values()) == 1, "an eventOffset was reused"


def test_old_run_ledgers_are_removed_past_keep_runs(kafka, generator_factory, tmp_path) -> None:
    """GENERATOR_KEEP_RUNS=2: a run's start removes the oldest ledgers so that two are left, its
    own included; a file that is not a ledger is left alone."""
    data = tmp_path / "gen-data"
    runs = data / "generator" / "runs"
    gen = generator_factory(kafka.bootstrap, kafka.new_topic(), data_dir=data, GENERATOR_KEEP_RUNS="2")
    ids = []
    for seed in (1, 2, 3):
        ids.append(gen.post("/generator/start", {"rate": 5000, "count": 50, "seed": seed}).json()["id"])
        gen.wait_state({"completed"}, 30)
        if seed == 1:
            (runs / "notes.txt").write_text("an operator's file")
    assert sorted(p.name for p in runs.iterdir()) == sorted([f"{ids[1]}.jsonl", f"{ids[2]}.jsonl", "notes.txt"])


def test_oldest_past_keeps_the_newest() -> None:
    ledgers = [(3.0, "c.jsonl"), (1.0, "a.jsonl"), (2.0, "b.jsonl"), (2.0, "b2.jsonl")]
    assert oldest_past(ledgers, 2) == ["b.jsonl", "a.jsonl"]
    assert oldest_past(ledgers, 0) == ["c.jsonl", "b2.jsonl", "b.jsonl", "a.jsonl"]
    assert oldest_past(ledgers, 9) == []
