"""The app in-process (lifespan included): a disk-full error is reported in status and retried."""

from __future__ import annotations

import errno
import os

import polars as pl
from fastapi.testclient import TestClient

from contract.merger_status import MergerStatus
from services.merger import commit as commit_module
from services.merger import merge as merge_module
from services.merger.app import create_app
from services.merger.settings import MergerSettings
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, batch_text, rows, write_batch


def status(client: TestClient) -> MergerStatus:
    return MergerStatus.model_validate_json(client.get("/merger/status").content)


def test_disk_full_is_reported_then_merging_resumes(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, rescan_interval_s=0.2, retry_backoff_max_s=1.0)
    disk_full = True
    real_pwritev = os.pwritev

    def pwritev(fd, buffers, offset):
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwritev(fd, buffers, offset)

    monkeypatch.setattr(commit_module.os, "pwritev", pwritev)
    with TestClient(create_app(settings)) as client:
        write_batch(settings.rows_dir, 0, batch_text(0, 5))
        wait_for(lambda: "No space" in (status(client).last_error or ""), 10, "last_error")
        # nothing committed: the header alone, not a half-written batch
        assert client.get("/merged.csv").content == HEADER_LINE.encode()
        assert client.get("/healthz").status_code == 200
        disk_full = False
        # (the commit and the cleared error are two updates of the status: wait for both)
        wait_for(
            lambda: (st := status(client)).last_batch_id == 0 and st.last_error is None, 10, "merge after space is back"
        )
        st = status(client)
        assert st.last_error is None and st.rows_merged == 5
        assert client.get("/merged.csv").content == (HEADER_LINE + rows(0, 5)).encode()
        assert "merger_io_errors_total" in client.get("/metrics").text


def test_state_that_cannot_be_reconciled_is_not_ready_and_says_why(tmp_path):
    settings = MergerSettings(data_dir=tmp_path)
    settings.merger_dir.mkdir(parents=True)
    settings.merged_csv.write_text(HEADER_LINE + "rows,of,unknown,origin\n")
    with TestClient(create_app(settings)) as client:
        r = wait_for(lambda: client.get("/readyz").status_code == 503 and client.get("/readyz"), 10, "not ready")
        assert "no committed progress" in r.json()["problems"][0]
        assert "no committed progress" in status(client).last_error
        assert client.get("/merged.csv").status_code == 503


def test_a_dead_merge_loop_is_not_ready_with_its_cause(tmp_path, monkeypatch):
    settings = MergerSettings(data_dir=tmp_path, rescan_interval_s=0.2)

    def run_pass(self, stop=None):
        raise pl.exceptions.PanicException("a bug nobody caught")

    monkeypatch.setattr(merge_module.MergeEngine, "run_pass", run_pass)
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: "merge loop stopped" in str(client.get("/readyz").json()["problems"]), 10, "the cause")
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert "a bug nobody caught" in status(client).last_error


def test_a_full_disk_while_loading_the_state_is_retried_not_fatal(tmp_path, monkeypatch):
    """A state.json to rebuild on a full disk: the merger reports it (step "start") and loads once
    space is back, without a restart."""
    from services.merger import watcher as watcher_module

    settings = MergerSettings(data_dir=tmp_path, rescan_interval_s=0.2, retry_backoff_max_s=1.0)
    real_engine = watcher_module.MergeEngine
    disk_full = True

    def engine(*args, **kwargs):
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device", str(settings.state_file))
        return real_engine(*args, **kwargs)

    monkeypatch.setattr(watcher_module, "MergeEngine", engine)
    with TestClient(create_app(settings)) as client:
        w = wait_for(lambda: status(client).write_blocked, 10, "write_blocked")
        assert (w.condition, w.step, w.folder) == ("disk full", "start", str(settings.merger_dir))
        r = client.get("/readyz")
        assert r.status_code == 503 and "disk full" in r.json()["problems"][0]  # no state to serve yet
        disk_full = False
        wait_for(lambda: client.get("/readyz").status_code == 200, 10, "loaded once space is back")
        st = status(client)
        assert st.write_blocked is None and st.last_error is None
        assert "merger_disk_full 0.0" in client.get("/metrics").text
