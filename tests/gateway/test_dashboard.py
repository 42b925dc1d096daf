"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright): it loads,
shows healthy components, Start makes the produced-events chart move; a screenshot is saved to
test-artifacts/dashboard.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.documents import generator_status
from tests.gateway.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: run scripts/install.sh as root")
def test_dashboard_start_moves_chart(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(stack.url + "/")
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
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: run scripts/install.sh as root")
def test_dashboard_asks_for_the_key(tmp_path: Path, kafka: object) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.gateway.conftest import make_stack

    s = make_stack(tmp_path, kafka, GATEWAY_API_KEY="dash-key")
    try:
        s.start("generator")
        s.start("gateway")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page()
                page.goto(s.url + "/")
                page.fill("#rate", "5")
                page.click("#start")
                expect(page.locator("#key-dialog")).to_be_visible(timeout=10_000)
                page.fill("#key-input", "dash-key")
                page.click("#key-form button[value=ok]")
                expect(page.locator("#control-msg")).to_contain_text("running", timeout=10_000)
                assert page.evaluate("sessionStorage.getItem('devicestream.apiKey')") == "dash-key"
            finally:
                browser.close()
    finally:
        s.stop_all()
