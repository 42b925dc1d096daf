"""Device figures: the incremental book against a recomputation from merged.csv in plain Python,
whatever the chunking and across a snapshot; and a real merger SIGKILLed twice while merging."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from contract.devices import DevicesResponse, Figures
from services.merger.device_snapshot import BookDoc, DevicesSnapshot
from services.merger.device_tracker import DeviceTracker, read_whole_lines
from services.merger.devices import MIN_US, DeviceBook, now_us, parse_rows
from services.merger.state import MergerState
from tests.documents import devices, merger_status
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, T0, batch_rows, write_batch
from tests.merger.test_crash import committed

US = 1_000_000
#: The clock of the pure tests: 280 s after batch_rows' first eventTime (batch 60 is at +300 s): the
#: rows of the last batches are later than the clock (out of range), those just before are recent.
NOW = (T0 + timedelta(seconds=280) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def epoch_us(text: str) -> int | None:
    """None for a time Python cannot hold (years 0, -1, 10000 that a valid record reaches by its zone)."""
    try:
        t = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def figures(rows: list[dict], now: int) -> dict:
    """recompute()'s figures of `rows`: those later than `now` (or outside years 1-9999) are out of range."""
    temps = [int(r["temperature"]) for r in rows]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"] or "none"] = statuses.get(r["status"] or "none", 0) + 1
    return {
        "rows": len(rows),
        "last_us": max((r["us"] for r in rows if in_range(r["us"], now)), default=None),
        "temperature_min": min(temps, default=None),
        "temperature_max": max(temps, default=None),
        "temperature_mean": sum(temps) / len(temps) if temps else None,
        "statuses": dict(sorted(statuses.items())),
        "error_share": statuses.get("ERROR", 0) / len(rows) if rows else None,
        "rows_out_of_range": sum(1 for r in rows if not in_range(r["us"], now)),
    }


def in_range(us: int | None, now: int) -> bool:
    return us is not None and MIN_US <= us <= now


def recompute(merged_csv_text: str, window_s: int, now: int) -> dict:
    """The expected /devices answer at `now` (epoch microseconds), from merged.csv alone, without polars."""
    rows = list(csv.DictReader(io.StringIO(merged_csv_text, newline="")))
    for r in rows:
        r["us"] = epoch_us(r["eventTime"])
    start = now // US - window_s + 1
    devices = {}
    for name in sorted({r["deviceId"] for r in rows if r["deviceId"]}):
        mine = [r for r in rows if r["deviceId"] == name]
        devices[name] = {
            "total": figures(mine, now),
            "recent": figures([r for r in mine if in_range(r["us"], now) and r["us"] // US >= start], now),
        }
    return {
        "rows": len(rows),
        "rows_without_device": sum(1 for r in rows if not r["deviceId"]),
        "rows_out_of_range": sum(1 for r in rows if not in_range(r["us"], now)),
        "devices": devices,
    }


def iso_us(value: datetime | None) -> int | None:
    """Epoch microseconds of a datetime of the API (UTC)."""
    if value is None:
        return None
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def observed(doc: DevicesResponse) -> dict:
    """A /devices document in recompute()'s shape."""

    def fig(f: Figures) -> dict:
        keys = {"rows", "temperature_min", "temperature_max", "temperature_mean", "statuses", "error_share"}
        keys.add("rows_out_of_range")
        return {**f.model_dump(include=keys), "last_us": iso_us(f.last_seen)}

    return {
        "rows": doc.rows,
        "rows_without_device": doc.rows_without_device,
        "rows_out_of_range": doc.rows_out_of_range,
        "devices": {d.deviceId: {"total": fig(d.total), "recent": fig(d.recent)} for d in doc.devices},
    }


def assert_same(got: dict, expected: dict) -> None:
    for d in (got, expected):
        for dev in d["devices"].values():
            for part in dev.values():
                if part["temperature_mean"] is not None:
                    part["temperature_mean"] = round(part["temperature_mean"], 9)
    assert got == expected


def book_doc(book: DeviceBook, now: int, **page: object) -> DevicesResponse:
    """The book's answer at `now` as a reader of /devices gets it (through its JSON)."""
    return DevicesResponse.model_validate_json(book.response(0, 0, now, **page).model_dump_json())  # type: ignore[arg-type]


@pytest.mark.parametrize("pieces", [1, 3, 40])
def test_book_in_any_chunking_equals_the_recomputation(pieces):
    rnd = random.Random(pieces)
    lines = "".join(batch_rows(b, rnd.randint(1, 300), rnd) for b in range(60)).splitlines(keepends=True)
    book = DeviceBook(window_s=60)
    cuts = sorted(rnd.sample(range(1, len(lines)), pieces - 1)) if pieces > 1 else []
    for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        book.apply(parse_rows("".join(lines[a:b]).encode()), NOW)
    expected = recompute(HEADER_LINE + "".join(lines), 60, NOW)
    assert_same(observed(book_doc(book, NOW)), expected)
    # a snapshot round trip changes nothing, and the book goes on from it
    again = DeviceBook.from_doc(BookDoc.model_validate_json(book.to_doc().model_dump_json()))
    assert book_doc(again, NOW) == book_doc(book, NOW)
    more = batch_rows(61, 50, rnd)
    again.apply(parse_rows(more.encode()), NOW)
    assert_same(observed(book_doc(again, NOW)), recompute(HEADER_LINE + "".join(lines) + more, 60, NOW))


def test_the_window_keeps_only_its_seconds():
    book = DeviceBook(window_s=10)
    rnd = random.Random(3)
    for b in range(100):
        book.apply(parse_rows(batch_rows(b, 50, rnd).encode()), NOW)
    assert all(len(per) <= 10 for per in book.seconds.values())


N_BATCHES = 120
WINDOW_S = 60


@pytest.mark.integration
def test_figures_match_merged_csv_after_two_sigkills(merger_runner, rows_dir):
    rnd = random.Random(11)
    files = {b: HEADER_LINE + batch_rows(b, rnd.randint(50, 300), rnd) for b in range(N_BATCHES)}
    state_file = merger_runner.data_dir / "merger" / "state.json"
    snapshot = merger_runner.data_dir / "merger" / "devices.json"
    env = {
        "MERGER_MAX_GROUP_BATCHES": "1",  # one commit per batch: many points to be killed at
        "MERGER_DEVICES_WINDOW_S": str(WINDOW_S),
        "MERGER_DEVICES_SNAPSHOT_INTERVAL_S": "0.3",
    }

    def snapshot_size() -> int:
        try:
            return DevicesSnapshot.model_validate_json(snapshot.read_bytes()).covered_size
        except (FileNotFoundError, ValidationError):
            return 0

    thirds = [range(0, 40), range(40, 80), range(80, N_BATCHES)]
    for b in thirds[0]:
        write_batch(rows_dir, b, files[b])
    # Each process: its batches arrive, it merges some, it is SIGKILLed in the middle of merging
    # the next ones (the device snapshot, saved every 0.3 s, is then behind the committed size).
    for i, (now, then) in enumerate(itertools.pairwise(thirds)):
        proc = merger_runner.process(ready=False, **env).start()
        wait_for(
            lambda n=now: committed(state_file)[0] >= n[-1] and snapshot_size() > 0,
            60,
            f"batches up to {now[-1]} merged and a device snapshot saved",
            logs=[proc.log_file],
            interval=0.01,
        )
        for b in then:
            write_batch(rows_dir, b, files[b])
        wait_for(
            lambda t=then[0] + 5 * i: committed(state_file)[0] >= t, 60, "merging the next batches", interval=0.002
        )
        proc.kill()
        last, size = committed(state_file)
        print(f"kill {i + 1}: merged up to batch {last} ({size} bytes); device snapshot covers {snapshot_size()}")
        assert 0 < snapshot_size() <= size

    with merger_runner.process(**env) as proc:
        url = merger_runner.url

        def caught_up() -> DevicesResponse | None:
            st = merger_status(url)
            doc = devices(url)
            done = st.last_batch_id == N_BATCHES - 1 and doc.covered_size == doc.committed_size == st.file_size
            return doc if done else None

        doc = wait_for(caught_up, 60, "all merged and the device figures caught up", logs=[proc.log_file])
        assert [d.deviceId for d in devices(url, "D003").devices] == ["D003"]
        missing = httpx.get(f"{url}/devices/D999", timeout=5)
        assert missing.status_code == 404 and "D999" in missing.json()["detail"]
        assert proc.stop() == 0

    text = (merger_runner.data_dir / "merger" / "merged.csv").read_text()
    assert doc.window_s == WINDOW_S
    assert_same(observed(doc), recompute(text, WINDOW_S, iso_us(doc.window_end)))
    # a clean stop saved the figures up to the end
    assert snapshot_size() == len(text.encode())


async def test_tracker_keeps_counting_when_it_cannot_save(tmp_path, caplog):
    """A snapshot that cannot be written (here: its folder is a file) is logged once and retried
    every interval; the figures still follow merged.csv."""
    merged = tmp_path / "merged.csv"
    text = HEADER_LINE + batch_rows(0, 100, random.Random(1))
    merged.write_text(text)
    (tmp_path / "blocker").write_text("")
    state = MergerState(generation="g", committed_size=len(text.encode()), rows_merged=100)
    tracker = DeviceTracker(
        merged,
        tmp_path / "blocker" / "devices.json",
        lambda: state,
        window_s=60,
        max_devices=100,
        snapshot_interval_s=0.05,
        poll_interval_s=0.01,
    )
    attempts = []
    third = asyncio.Event()
    loop = asyncio.get_running_loop()
    real_save = tracker.save

    def counting_save() -> None:  # runs in a worker thread
        attempts.append(1)
        if len(attempts) == 3:
            loop.call_soon_threadsafe(third.set)
        real_save()

    tracker.save = counting_save  # type: ignore[method-assign]
    task = asyncio.create_task(tracker.run())
    try:
        async with asyncio.timeout(20):
            await third.wait()
    finally:
        tracker.stop()
        await task
    assert tracker.covered_size == state.committed_size
    now = now_us()
    assert_same(observed(book_doc(tracker.book, now)), recompute(text, 60, now))
    errors = [r for r in caplog.records if r.getMessage() == "device figures could not be updated"]
    assert len(errors) == 1


@pytest.mark.parametrize("chunk", [1, 4, 8, 16, 1000])
def test_committed_bytes_are_read_in_whole_lines(tmp_path, chunk):
    data = b"".join(b"x" * n + b"\n" for n in (3, 10, 1, 50, 2, 7, 0, 4))
    (tmp_path / "f").write_bytes(data + b"partial")  # past the committed end: never read
    for start in (0, 4):
        got = list(read_whole_lines(tmp_path / "f", start, len(data), chunk))
        assert b"".join(c for _, c in got) == data[start:]
        assert all(c.endswith(b"\n") for _, c in got) and got[-1][0] == len(data)


@pytest.mark.parametrize("chunk", [1, 5, 16, 1000])
def test_chunks_never_end_inside_a_quoted_newline(tmp_path, chunk):
    rows = [b'a,"x\ny",1\n', b'b,"p\r\nq ""r""\n",2\n', b"c,plain,3\n", b'd,"\n\n",4\n']
    data = b"".join(rows)
    (tmp_path / "f").write_bytes(data)
    got = list(read_whole_lines(tmp_path / "f", 0, len(data), chunk))
    assert b"".join(c for _, c in got) == data
    ends, pos = set(), 0
    for r in rows:
        pos += len(r)
        ends.add(pos)
    assert all(end in ends for end, _ in got), [end for end, _ in got]


@pytest.mark.integration
def test_device_and_query_metrics_are_exported(merger_runner, rows_dir):
    with merger_runner.process() as proc:
        url = merger_runner.url
        write_batch(rows_dir, 0, HEADER_LINE + batch_rows(0, 50, random.Random(2)))
        wait_for(lambda: devices(url).rows == 50, 30, "batch 0 counted", logs=[proc.log_file])
        assert httpx.get(f"{url}/merged.csv", params={"deviceId": "D001"}).status_code == 200
        text = httpx.get(f"{url}/metrics").text
        assert "merger_devices_behind_bytes 0.0" in text
        assert "merger_devices_update_seconds_count" in text
        wait_for(
            lambda: 'merger_query_duration_seconds_count{format="csv"} 1.0' in httpx.get(f"{url}/metrics").text,
            10,
            "the query counted",
        )


def extreme_rows() -> str:
    """Valid rows with every eventTime the validity table lets through to merged.csv, the years a
    datetime cannot hold included, and one far in the future."""
    times = [
        "0001-01-01T00:00:00.000000Z",
        "0000-12-31T23:00:00.000000Z",
        "-0001-12-31T23:00:00.000000Z",
        "+10000-01-01T00:59:59.000000Z",
        "9999-12-31T23:59:59.999999Z",
        "1969-12-31T23:59:59.999999Z",
        (T0 + timedelta(seconds=270)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    ]
    return "".join(
        f"e{i},{i},device,CI00100,{t},0,{'D001' if i % 2 else 'D002'},{i},C,ERROR\n" for i, t in enumerate(times)
    )


def test_every_valid_event_time_is_counted_and_far_future_rows_leave_recent_alone():
    book = DeviceBook(window_s=60)
    text = batch_rows(50, 200, random.Random(5)) + extreme_rows()
    book.apply(parse_rows(text.encode()), NOW)
    doc = book_doc(book, NOW)
    assert_same(observed(doc), recompute(HEADER_LINE + text, 60, NOW))
    assert doc.rows_out_of_range == 4  # years 0, -1, 10000 and 9999 (later than the clock)
    assert doc.window_end is not None and iso_us(doc.window_end) == NOW
    # the far-future rows did not move the window: the recent figures still hold the recent rows
    assert sum(d.recent.rows for d in doc.devices) > 0
    for d in doc.devices:
        assert d.total.last_seen is not None and iso_us(d.total.last_seen) <= NOW
    # a snapshot keeps it all
    again = DeviceBook.from_doc(BookDoc.model_validate_json(book.to_doc().model_dump_json()))
    assert book_doc(again, NOW) == doc


def test_the_book_keeps_the_most_recently_merged_devices_and_counts_the_dropped():
    book = DeviceBook(window_s=60, max_devices=3)
    for name in ("A", "B", "C", "D", "B", "E"):  # B merged again: A, C then D are the oldest
        book.apply(parse_rows(f"x,1,device,CI1,2026-11-28T03:00:00.000000Z,0,{name},1,C,OK\n".encode()), NOW)
    doc = book_doc(book, NOW)
    assert [d.deviceId for d in doc.devices] == ["B", "D", "E"]
    assert (doc.devices_kept, doc.devices_dropped, doc.rows_dropped, doc.rows) == (3, 2, 2, 6)
    assert [d.total.rows for d in doc.devices] == [2, 1, 1]
    # a smaller limit at the next start drops the oldest again
    smaller = DeviceBook.from_doc(BookDoc.model_validate_json(book.to_doc().model_dump_json()), max_devices=1)
    assert [d.deviceId for d in book_doc(smaller, NOW).devices] == ["E"]


def test_pages_cover_every_device_once_in_order():
    book = DeviceBook(window_s=60)
    names = [f"D{i:04d}" for i in range(250)]
    book.apply(
        parse_rows("".join(f"x,1,device,CI1,2026-11-28T03:00:00.000000Z,0,{n},1,C,OK\n" for n in names).encode()),
        NOW,
    )
    seen, after, pages = [], None, 0
    while True:
        doc = book_doc(book, NOW, limit=100, after=after)
        seen += [d.deviceId for d in doc.devices]
        pages += 1
        after = doc.next_after
        if after is None:
            break
    assert seen == names and pages == 3 and doc.devices_kept == 250
    assert book_doc(book, NOW, limit=10, after="D0245").devices[0].deviceId == "D0246"
