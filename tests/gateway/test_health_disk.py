"""The disk rule of /status (services/gateway/health.py): a write of the merger that fails (disk full) makes
the pipeline down, with a message naming the folder to free; pure, a fixed clock."""

from __future__ import annotations

from contract.merger_status import MergerStatus
from services.gateway.health import HttpProbe, assess_merger
from tests.gateway.test_health_rules import NOW, T, run

BLOCKED = {
    "condition": "disk full",
    "folder": "/data/merger",
    "path": "/data/merger/journal.jsonl",
    "step": "journal",
    "error": "No space left on device",
    "errno": 28,
    "since": NOW - 42,
    "attempts": 5,
    "retry_in_s": 16.0,
}


def test_a_full_disk_of_the_merger_is_down_naming_the_folder() -> None:
    doc = run(
        m=HttpProbe("merger", "http://m", reachable=True, doc=MergerStatus.model_validate({"write_blocked": BLOCKED}))
    )
    assert doc.overall == "down" and doc.components.merger.status == "down"
    (reason,) = doc.reasons
    assert reason.startswith("merger: disk full in /data/merger: merging paused for 42s")
    assert "journal.jsonl" in reason and "nothing lost" in reason
    blocked = doc.components.merger.write_blocked
    assert blocked is not None and blocked.folder == "/data/merger"  # as the merger sent it


def test_without_a_clock_the_message_still_names_the_folder() -> None:
    probe = HttpProbe("merger", "http://m", reachable=True, doc=MergerStatus.model_validate({"write_blocked": BLOCKED}))
    assert "disk full in /data/merger: merging paused, retried" in assess_merger(probe, T).reasons[0]
    assert assess_merger(HttpProbe("merger", "http://m", reachable=True, doc=MergerStatus()), T).status == "ok"
