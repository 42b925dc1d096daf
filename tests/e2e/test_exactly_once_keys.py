"""Exactly once keyed by Kafka offsets, end to end: the real broker, Spark job and merger started by
the launcher (tests/e2e/conftest.py), records a real topic can hold and actions real operators take.
Each scenario ends with `devicestream verify` exit 0 (the recreated topic, last, ends with its
documented outcome in /merger/status). They share one stack and run in file order."""

from __future__ import annotations

import shutil
import signal

import httpx
import orjson
import pytest

from tests.e2e.conftest import Stack
from tests.helpers import produce, recreate_topic, wait_for

pytestmark = pytest.mark.integration

TOPIC = "device-events"
RATE = 1000


def _event(offset: int, **fields: object) -> dict:
    reading = {"deviceId": "D001", "temperature": 7, "measure": "C", "status": "SUCCESS"}
    reading.update({k: v for k, v in fields.items() if k in reading})
    event = {
        "eventId": f"keys-{offset}",
        "eventOffset": offset,
        "eventPublisher": "device",
        "customerId": "CI00100",
        "data": {"devices": [reading]},
        "eventTime": "2026-11-28T03:33:11.123456Z",
    }
    event.update({k: v for k, v in fields.items() if k not in reading})
    return event


def _produce(stack: Stack, values: list[bytes]) -> None:
    produce(stack.bootstrap, TOPIC, values, key=b"CI00100", max_request_size=2_000_000)


def _wait_merging(stack: Stack, more_than: int) -> None:
    wait_for(
        lambda: stack.merger_status().rows_merged > more_than,
        180,
        "the merger to merge new rows",
        logs=stack.logs("spark", "merger"),
        interval=0.5,
    )


def test_1_cr_and_crlf_in_string_fields_are_merged_as_they_are(stack: Stack) -> None:
    base = 2 * 10**12
    _produce(
        stack,
        [
            orjson.dumps(_event(base, deviceId="D\r1")),
            orjson.dumps(_event(base + 1, customerId="CI\r\n00100", deviceId="D\r\n2")),
            orjson.dumps(_event(base + 2, eventPublisher="dev\nice")),
            orjson.dumps(_event(base + 3)),
        ],
    )
    stack.verify()
    st = stack.merger_status()
    assert st.quarantined == [] and st.last_error is None
    body = httpx.get(f"{stack.gateway}/merged.csv", timeout=30).content
    assert b'"D\r1"' in body and b'"CI\r\n00100"' in body and b'"D\r\n2"' in body


def test_2_a_200k_device_id_with_a_comma_is_merged(stack: Stack) -> None:
    base = 3 * 10**12
    long_id = "D," + "x" * 200_000
    _produce(stack, [orjson.dumps(_event(base, deviceId=long_id)), orjson.dumps(_event(base + 1))])
    stack.verify()
    st = stack.merger_status()
    assert st.quarantined == [] and st.last_error is None
    ready = httpx.get(f"{stack.merger}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text


def test_3_checkpoint_deleted_mid_run_replays_and_merges_each_record_once(stack: Stack) -> None:
    before = stack.merger_status()
    stack.start_run(rate=RATE, count=RATE * 20, seed=31)
    _wait_merging(stack, before.rows_merged)
    old = stack.kill("spark")
    # The launcher restarts the job; a JVM takes seconds before it reads its checkpoint.
    shutil.rmtree(stack.data / "spark" / "checkpoint")
    stack.wait_restarted("spark", old)
    assert stack.wait_run_ended().state == "completed"
    stack.verify()
    st = stack.merger_status()
    assert st.lineage != before.lineage, "the merger follows the new checkpoint lineage"
    assert st.rows_skipped > before.rows_skipped, "the replay's rows already merged were dropped"
    assert not [e for e in st.events if e.kind in ("topic_recreated", "offsets_skipped")]


def test_4_merger_state_deleted_mid_run(stack: Stack) -> None:
    before = stack.merger_status().rows_merged
    stack.start_run(rate=RATE, count=RATE * 20, seed=41)
    state = stack.data / "merger" / "state.json"
    _wait_merging(stack, before)
    state.unlink()  # while it runs: the next commit writes it again
    before = stack.merger_status().rows_merged
    _wait_merging(stack, before)
    old = stack.kill("merger", signal.SIGKILL)
    state.unlink(missing_ok=True)  # and while it is down: rebuilt from the journal
    stack.wait_restarted("merger", old)
    assert stack.wait_run_ended().state == "completed"
    stack.verify()
    assert "state_rebuilt" in [e.kind for e in stack.merger_status().events]


def test_5_recreated_topic_is_a_visible_event(stack: Stack) -> None:
    """Documented outcome: Spark refuses its checkpoint (offsets went backwards), the operator deletes
    it, the new lineage reads the new topic, and the merger records `topic_recreated` (old and new
    topic id) in /merger/status and its log, then merges the new topic's records from offset 0.
    merged.csv keeps the old topic's rows, so verify (which reads the topic) is not the check here."""
    before = stack.merger_status()
    old_topic_id = before.topic_id
    assert old_topic_id

    old = stack.kill("spark")
    recreate_topic(stack.bootstrap, TOPIC)
    shutil.rmtree(stack.data / "spark" / "checkpoint", ignore_errors=True)
    stack.wait_restarted("spark", old)
    base = 4 * 10**12
    _produce(stack, [orjson.dumps(_event(base + i)) for i in range(30)])

    def recreated() -> dict | None:
        st = stack.merger_status()
        events = [e for e in st.events if e.kind == "topic_recreated"]
        return events[-1] if events and st.rows_merged >= before.rows_merged + 30 else None

    event = wait_for(recreated, 180, "topic_recreated in /merger/status", logs=stack.logs("spark", "merger"))
    st = stack.merger_status()
    assert st.topic_id != old_topic_id and old_topic_id in event.detail
    assert sum(st.merged_offsets.values()) == 30
    assert st.rows_merged == before.rows_merged + 30

    # ... and the gateway's /status shows it: degraded, naming the event, while it is recent (the
    # gateway's snapshot is refreshed about once a second: polled, not read once)
    def shown() -> bool:
        status = stack.status()
        return status.overall in ("degraded", "down") and any(
            r.startswith("merger: topic_recreated") for r in status.reasons
        )

    wait_for(shown, 30, "topic_recreated in /status", logs=stack.logs("merger", "gateway"))
