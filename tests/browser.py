"""Headless Chromium for the dashboard and report tests (Debian's /usr/bin/chromium, driven by
playwright): one launch, one page, the page's script errors collected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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
#: Skip a test when Chromium is not installed.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is missing: run scripts/install.sh as root"
)


@contextmanager
def browser_page(url: str, **page_options: Any) -> Iterator[tuple[Any, list[str]]]:
    """A new page (`page_options`: viewport...) at `url`, and the list its script errors go to."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(**page_options)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()
