"""HTTP against the real merger process."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.documents import merger_status
from tests.helpers import wait_for
from tests.merger.batches import (
    HEADER_LINE,
    LINEAGE_A,
    LINEAGE_B,
    batch_text,
    keyed_rows,
    rows,
    write_batch,
    write_keyed_batch,
)

pytestmark = pytest.mark.integration

STATUS_FIELDS = {
    "batches_merged",
    "last_batch_id",
    "rows_merged",
    "file_size",
    "empty_batches",
    "quarantined",
    "newest_batch_id",
    "lag_batches",
    "waiting_for_batch",
    "waiting_since",
    "last_merge_at",
    "freshness",
    "last_error",
    "lineage",
    "topic",
    "topic_id",
    "merged_offsets",
    "rows_skipped",
    "events",
    "write_blocked",
}


def test_download_validators_ranges_and_status(merger_runner, rows_dir):
    with merger_runner.process() as proc:
        url, logs = merger_runner.url, [proc.log_file]
        # An empty result is a result: before the first row, the header line alone.
        r = httpx.get(f"{url}/merged.csv")
        assert r.status_code == 200 and r.content == HEADER_LINE.encode()
        assert r.headers["content-length"] == str(len(HEADER_LINE)) and r.headers["etag"]
        assert httpx.get(f"{url}/merged.csv", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        head = httpx.head(f"{url}/merged.csv")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(HEADER_LINE))

        write_batch(rows_dir, 0, batch_text(0, 10))
        write_batch(rows_dir, 1, HEADER_LINE)
        wait_for(lambda: merger_status(url).last_batch_id == 1, 10, "batches 0-1 merged", logs=logs)
        first = httpx.get(f"{url}/merged.csv")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/csv")
        assert first.content == (HEADER_LINE + rows(0, 10)).encode()
        assert int(first.headers["content-length"]) == len(first.content)
        etag, size = first.headers["etag"], len(first.content)
        assert httpx.get(f"{url}/merged.csv", headers={"If-None-Match": etag}).status_code == 304

        head = httpx.head(f"{url}/merged.csv")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == etag and head.headers["content-length"] == str(size)

        part = httpx.get(f"{url}/merged.csv", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == first.content[:10]
        assert part.headers["content-range"] == f"bytes 0-9/{size}"
        nothing_new = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={size}-"})
        assert nothing_new.status_code == 416 and nothing_new.headers["content-range"] == f"bytes */{size}"

        write_batch(rows_dir, 2, batch_text(2, 5))
        write_batch(rows_dir, 4, batch_text(4, 5))  # 3 is missing
        wait_for(lambda: merger_status(url).waiting_for_batch == 3, 10, "the gap at batch 3 reported", logs=logs)
        st = merger_status(url)
        assert st.model_fields_set == STATUS_FIELDS and not st.model_extra  # every documented field, no other
        assert (st.last_batch_id, st.newest_batch_id, st.lag_batches) == (2, 4, 2)
        assert st.waiting_since is not None
        new = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={size}-"})
        assert new.status_code == 206 and new.content == rows(2, 5).encode()
        # If-Range with an old validator: the range does not apply, the whole new version is sent
        stale = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={size}-", "If-Range": etag})
        assert stale.status_code == 200 and stale.content == (HEADER_LINE + rows(0, 10) + rows(2, 5)).encode()
        changed = httpx.get(f"{url}/merged.csv", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.headers["last-modified"]

        write_batch(rows_dir, 3, "bad header\n")
        wait_for(lambda: merger_status(url).last_batch_id == 4, 10, "the gap closed", logs=logs)
        st = merger_status(url)
        assert st.waiting_for_batch is None and st.lag_batches == 0
        assert (st.batches_merged, st.rows_merged, st.empty_batches) == (3, 20, 1)
        assert [q.file for q in st.quarantined] == ["batch-000000000003.csv"]
        assert "header" in st.quarantined[0].reason
        assert st.file_size == len(httpx.get(f"{url}/merged.csv").content)
        assert st.freshness.p50_s is not None and st.freshness.last_s is not None

        metrics = httpx.get(f"{url}/metrics").text
        assert "merger_rows_merged_total 20.0" in metrics
        assert "merger_quarantined_batches_total 1.0" in metrics
        assert "merger_freshness_seconds_count 20.0" in metrics
        assert "merger_merge_duration_seconds_bucket" in metrics
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/docs").status_code == 200
        assert proc.stop() == 0  # SIGTERM: clean exit


def test_a_download_racing_with_appends_always_ends_on_a_whole_row(merger_runner, rows_dir):
    n_batches, n_rows = 150, 40
    with merger_runner.process() as proc:
        url = merger_runner.url
        done = threading.Event()

        def produce() -> None:
            try:
                for b in range(n_batches):
                    write_batch(rows_dir, b, batch_text(b, n_rows))
                    if b % 10 == 0:  # let the merger catch up now and then: many small commits
                        wait_for(lambda b=b: merger_status(url).last_batch_id == b, 10, f"batch {b}")
            finally:
                done.set()

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        downloads, local = 0, b""
        with httpx.Client(base_url=url, timeout=10) as client:
            while not done.is_set() or merger_status(url).last_batch_id != n_batches - 1:
                r = client.get("/merged.csv")
                body = r.content
                assert len(body) == int(r.headers["content-length"])
                assert body.endswith(b"\n")
                assert body.count(HEADER_LINE.encode()) == 1 and body.startswith(HEADER_LINE.encode())
                assert all(line.count(b",") == 9 for line in body.splitlines())
                downloads += 1
                # and incrementally, as a client that only fetches what is new
                inc = client.get("/merged.csv", headers={"Range": f"bytes={len(local)}-"})
                if inc.status_code == 206:
                    assert inc.content.endswith(b"\n")
                    local += inc.content
                else:
                    assert inc.status_code == 416
                wait_for(lambda: proc.proc.poll() is None, 1, "merger alive")
        producer.join(10)
        full = httpx.get(f"{url}/merged.csv").content
        expected = (HEADER_LINE + "".join(rows(b, n_rows) for b in range(n_batches))).encode()
        assert full == expected
        tail = httpx.get(f"{url}/merged.csv", headers={"Range": f"bytes={len(local)}-"})
        assert local + (tail.content if tail.status_code == 206 else b"") == expected
        assert downloads > 3


def test_cr_lf_and_a_200k_field_are_merged_byte_for_byte(merger_runner, rows_dir):
    good = rows(0, 1)
    cr = good.replace("D001", '"D\r1"')
    crlf = good.replace("D001", '"D\r\n1"').replace("10000", "10001", 1)
    long_field = good.replace("D001", '"D,' + "x" * 200_000 + '"').replace("10000", "10002", 1)
    write_batch(rows_dir, 0, HEADER_LINE + cr + crlf)
    write_batch(rows_dir, 1, HEADER_LINE + long_field)
    write_batch(rows_dir, 2, batch_text(2, 3))
    with merger_runner.process():
        url = merger_runner.url
        wait_for(lambda: merger_status(url).last_batch_id == 2, 20, "three batches merged")
        st = merger_status(url)
        assert st.quarantined == [] and st.last_error is None and st.rows_merged == 6
        body = httpx.get(f"{url}/merged.csv").content
        assert body == (HEADER_LINE + cr + crlf + long_field + rows(2, 3)).encode()


def test_state_deleted_mid_run_and_a_new_lineage_end_with_every_record_once(merger_runner, rows_dir):
    write_keyed_batch(rows_dir, LINEAGE_A, 0, {0: (0, 50), 1: (0, 40)})
    with merger_runner.process() as proc:
        url = merger_runner.url
        wait_for(lambda: merger_status(url).last_batch_id == 0, 20, "batch 0")
        (merger_runner.data_dir / "merger" / "state.json").unlink()  # deleted while it runs
        write_keyed_batch(rows_dir, LINEAGE_A, 1, {0: (50, 60), 1: (40, 45)})
        wait_for(lambda: merger_status(url).last_batch_id == 1, 20, "batch 1")
        proc.kill()
    (merger_runner.data_dir / "merger" / "state.json").unlink()  # and deleted while it is down
    # a new checkpoint replays from the earliest offset, with other batch boundaries
    write_keyed_batch(rows_dir, LINEAGE_B, 0, {0: (0, 55), 1: (0, 30)})
    write_keyed_batch(rows_dir, LINEAGE_B, 1, {0: (55, 70), 1: (30, 48)})
    with merger_runner.process():
        url = merger_runner.url
        on_b = lambda: (st := merger_status(url)).lineage == LINEAGE_B and st.last_batch_id == 1  # noqa: E731
        wait_for(on_b, 20, "lineage B")
        st = merger_status(url)
        # B's batch 0 holds only merged records: deleted unread; batch 1 drops its 5 + 15 merged rows
        assert st.merged_offsets == {"0": 70, "1": 48} and st.rows_skipped == 5 + 15
        assert [e.kind for e in st.events] == ["state_rebuilt"]
        body = httpx.get(f"{url}/merged.csv").content
    expected = [{0: (0, 50), 1: (0, 40)}, {0: (50, 60), 1: (40, 45)}, {0: (60, 70), 1: (45, 48)}]
    assert body == (HEADER_LINE + "".join(keyed_rows(r) for r in expected)).encode()


def test_an_unknown_topic_id_holds_the_batch_with_an_event_in_the_status(merger_runner, rows_dir):
    write_keyed_batch(rows_dir, LINEAGE_A, 0, {0: (0, 5)})
    held = write_keyed_batch(rows_dir, LINEAGE_A, 1, {0: (5, 9)}, topic_id=None)
    with merger_runner.process():
        url = merger_runner.url

        def held_event() -> bool:
            st = merger_status(url)
            return st.last_batch_id == 0 and any(e.kind == "topic_id_unknown" for e in st.events)

        wait_for(held_event, 20, "the topic_id_unknown event in /merger/status")
        st = merger_status(url)
        assert held.exists() and st.merged_offsets == {"0": 5} and st.lag_batches == 1
        assert [e.kind for e in st.events] == ["topic_id_unknown"] and held.name in st.events[0].detail
        write_keyed_batch(rows_dir, LINEAGE_A, 1, {0: (5, 9)})  # the job re-ran it with the id
        wait_for(lambda: merger_status(url).merged_offsets == {"0": 9}, 20, "the batch merged once its id is known")
    assert not held.exists()
