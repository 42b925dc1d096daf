"""The dashboard's device table in headless Chromium, fed by the real merger through the real
gateway: devices appear as batches are merged, and their recent temperature and error share follow
the new rows without a reload. Screenshot: test-artifacts/dashboard-devices.png."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.browser import browser_page, needs_chromium
from tests.documents import devices
from tests.gateway.conftest import ARTIFACTS
from tests.gateway.real_merger import Served, served_in
from tests.helpers import wait_for
from tests.merger.batches import HEADER_LINE, batch_rows, write_batch
from tests.tiers import starts_processes

pytestmark = pytest.mark.integration


@pytest.fixture
@starts_processes
def served(tmp_path: Path) -> Iterator[Served]:
    yield from served_in(tmp_path)


def shown(page) -> dict[str, dict[str, str]]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#devices-body tr')].map(
            (r) => [r.dataset.device, {mean: r.dataset.recentMean, share: r.dataset.recentErrorShare,
                                       rows: r.dataset.rows, text: r.innerText}]))"""
    )


def number(value: object) -> float | None:
    """A figure as the API or the page's data attribute gives it ("" or None: no value)."""
    return None if value in ("", None) else round(float(value), 9)


def expected(served: Served) -> dict[str, dict[str, float | None]]:
    return {
        d.deviceId: {
            "mean": number(d.recent.temperature_mean),
            "share": number(d.recent.error_share),
            "rows": d.total.rows,
        }
        for d in devices(served.url).devices
    }


def table_matches_api(page, served: Served) -> None:
    """Poll until the table shows what /devices says (the dashboard polls it every 2 s)."""

    def same() -> bool:
        got = {
            k: {"mean": number(v["mean"]), "share": number(v["share"]), "rows": int(v["rows"])}
            for k, v in shown(page).items()
        }
        return bool(got) and got == expected(served)

    wait_for(same, 15, "the device table to match /devices", logs=served.logs())


@needs_chromium
def test_device_table_follows_the_merged_rows(served: Served) -> None:
    from playwright.sync_api import expect

    rnd = random.Random(9)
    with browser_page(served.url + "/", viewport={"width": 1400, "height": 1200}) as (page, errors):
        expect(page.locator("#devices-info")).to_contain_text("no device seen yet", timeout=15_000)

        for b in range(2):
            write_batch(served.rows_dir, b, HEADER_LINE + batch_rows(b, 200, rnd))
        served.merged_up_to(1)
        expect(page.locator("#devices-body tr")).to_have_count(5, timeout=15_000)
        table_matches_api(page, served)

        # a new device, all errors, hot, seen seconds ago (the recent window ends now): it
        # appears, and its figures are the API's
        now = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
        rows = "".join(
            f"ffff0000-{i:04x}-4000-8000-000000000000,{900_000 + i},device,CI00100,"
            f"{now}.{i:06d}Z,0,D777,{25 + i % 5},C,ERROR\n"
            for i in range(40)
        )
        write_batch(served.rows_dir, 2, HEADER_LINE + rows)
        served.merged_up_to(2)
        expect(page.locator("#dev-D777")).to_be_visible(timeout=15_000)
        table_matches_api(page, served)
        d777 = shown(page)["D777"]
        assert float(d777["share"]) == 1.0 and "100" in d777["text"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-devices.png"), full_page=True)

        # more devices than a page: the table shows the first page, the next one on request
        rows = "".join(
            f"eeee0000-{i:04x}-4000-8000-000000000000,{950_000 + i},device,CI00100,"
            f"2026-11-28T03:00:20.000000Z,0,P{i:03d},1,C,SUCCESS\n"
            for i in range(150)
        )
        write_batch(served.rows_dir, 3, HEADER_LINE + rows)
        served.merged_up_to(3)
        expect(page.locator("#devices-body tr")).to_have_count(100, timeout=15_000)
        expect(page.locator("#devices-info")).to_contain_text("100 of 156 devices shown", timeout=15_000)
        page.locator("#devices-next").click()
        expect(page.locator("#devices-body tr")).to_have_count(56, timeout=15_000)
        expect(page.locator("#dev-P149")).to_be_visible()
        expect(page.locator("#devices-next")).to_be_hidden()
        page.locator("#devices-first").click()
        expect(page.locator("#dev-D001")).to_be_visible(timeout=15_000)
        assert not errors, errors
