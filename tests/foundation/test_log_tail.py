"""devicestream.processes.log_tail: what a failed wait shows of a service's log."""

from __future__ import annotations

from pathlib import Path

from devicestream.processes import log_tail


def test_a_tail_leaves_out_access_lines(tmp_path: Path) -> None:
    """A test polling a service for 30 s fills its log with access lines; the tail still shows the
    line that says what went wrong."""
    log = tmp_path / "merger.log"
    error = "2026-12-03 20:58:05,120 ERROR merger services.merger.device_tracker: device figures could not be updated"
    access = '2026-12-03 20:58:35,{:03d} INFO merger uvicorn.access: 127.0.0.1:35854 - "GET /devices HTTP/1.1" 200'
    log.write_text("\n".join(["started", error, *(access.format(i) for i in range(500))]) + "\n")
    assert log_tail(log, 5).splitlines() == ["started", error]


def test_a_tail_is_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert log_tail(tmp_path / "none.log").startswith("(no log at ")
