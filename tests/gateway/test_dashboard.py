"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright): it loads,
shows healthy components, Start makes the produced-events chart move; a screenshot is saved to
test-artifacts/dashboard.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import browser_page, needs_chromium
from tests.documents import generator_status
from tests.gateway.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.integration


@needs_chromium
def test_dashboard_start_moves_chart(stack: Stack) -> None:
    from playwright.sync_api import expect

    with browser_page(stack.url + "/", viewport={"width": 1400, "height": 1000}) as (page, errors):
        expect(page.locator("#overall")).to_have_attribute("data-status", "ok", timeout=15_000)
        for name in ("kafka", "generator", "spark", "merger"):
            expect(page.locator(f"#c-{name}")).to_have_attribute("data-status", "ok")

        page.fill("#rate", "300")
        page.click("#start")
        expect(page.locator("#control-msg")).to_contain_text("running", timeout=10_000)
        page.wait_for_function(
            "() => Number(document.querySelector('#chart-produced').dataset.max || 0) > 100", timeout=20_000
        )
        page.wait_for_function(
            "() => Number(document.querySelector('#chart-merged').dataset.last || 0) > 0", timeout=20_000
        )
        page.wait_for_function("() => document.querySelectorAll('#tail-body tr').length > 0", timeout=20_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert not errors, errors

        page.click("#stop")
        expect(page.locator("#control-msg")).to_contain_text("stopped", timeout=10_000)
        assert generator_status(stack.url).state == "stopped"


@needs_chromium
def test_dashboard_asks_for_the_key(tmp_path: Path, kafka: object) -> None:
    from playwright.sync_api import expect

    from tests.gateway.conftest import make_stack

    with make_stack(tmp_path, kafka, GATEWAY_API_KEY="dash-key") as s:
        s.start_all("generator", "gateway")
        with browser_page(s.url + "/") as (page, _errors):
            page.fill("#rate", "5")
            page.click("#start")
            expect(page.locator("#key-dialog")).to_be_visible(timeout=10_000)
            page.fill("#key-input", "dash-key")
            page.click("#key-form button[value=ok]")
            expect(page.locator("#control-msg")).to_contain_text("running", timeout=10_000)
            assert page.evaluate("sessionStorage.getItem('devicestream.apiKey')") == "dash-key"
