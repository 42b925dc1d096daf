"""Show a run (issue 28), on a whole stack, in headless Chromium (Debian's /usr/bin/chromium, driven
by playwright) and with poppler's pdftoppm / pdfinfo / pdftotext:

- the dashboard's scenario form starts a ramp run with a fleet and faults, and the generator runs
  that profile; the requested-vs-achieved chart draws both; the report link names the run;
- the query panel's link returns exactly the filtered rows it shows;
- `devicestream report` writes the HTML and the PDF; opened offline, every chart of the HTML has
  data and every section holds the run's figures; GET /report serves the same page;
- pdftoppm renders every page of the PDF, whose text names the run and its figures.

Screenshots: test-artifacts/dashboard-scenario.png and test-artifacts/report-page-<n>.png."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from contract.devices import DevicesResponse
from contract.layout import DataLayout
from contract.pipeline_status import PipelineStatus
from contract.run_series import read_series, series_path
from tests.browser import browser_page, needs_chromium
from tests.e2e.conftest import Stack
from tests.helpers import REPO_ROOT, devicestream_cli, wait_for

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHARTS = ("architecture", "rate", "batches", "lag", "freshness", "devices")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    needs_chromium,
    pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is missing: run scripts/install.sh"),
]


def _cli(stack: Stack, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return devicestream_cli(*args, env=stack.env, timeout=timeout)


def _fill_scenario(page: object) -> None:
    page.select_option("#s-profile", "ramp")
    page.fill("#s-from", "50")
    page.fill("#s-to", "600")
    page.fill("#s-over", "10")
    page.fill("#s-duration", "15")
    page.fill("#s-seed", "28")
    page.check("#s-fleet-on")
    page.fill("#s-customers", "4")
    page.fill("#s-devices", "3")
    page.check("#s-faults-on")
    for field, value in (("#s-invalid", "0.02"), ("#s-late", "0.03"), ("#s-skewed", "0.25"), ("#s-resend", "0.02")):
        page.fill(field, value)


def test_show_a_ramp_run(stack: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    layout = DataLayout(stack.data)
    with browser_page(stack.gateway + "/", viewport={"width": 1400, "height": 1100}) as (page, errors):
        browser = page.context.browser
        expect(page.locator("#overall")).to_have_attribute("data-status", "ok", timeout=60_000)

        # ---- a ramp from the form reaches the generator with that profile ------------------
        _fill_scenario(page)
        page.click("#s-start")
        expect(page.locator("#scenario-msg")).to_contain_text("running", timeout=15_000)
        status = stack.generator_status()
        assert status.run is not None
        run_id = status.run.id
        params = status.run.params
        assert params.profile is not None and params.fleet is not None and params.faults is not None
        assert params.profile.model_dump() == {"kind": "ramp", "from_rate": 50.0, "to_rate": 600.0, "over_s": 10.0}
        assert params.duration_s == 15 and params.seed == 28
        assert params.fleet.customers == 4 and params.faults.late_ratio == 0.03
        expect(page.locator("#report-link")).to_have_attribute("href", f"/report?run={run_id}", timeout=10_000)
        page.wait_for_function(
            "() => Number(document.querySelector('#chart-rate').dataset.maxRequested) > 100 && "
            "Number(document.querySelector('#chart-rate').dataset.maxAchieved) > 100",
            timeout=60_000,
        )
        stack.wait_run_ended(timeout=240)
        res = _cli(stack, "verify", "--run", run_id, "--wait", "300")
        assert res.returncode == 0, res.stdout + res.stderr

        # ---- the query panel's link returns the filtered rows ------------------------------
        devices = DevicesResponse.model_validate_json(httpx.get(f"{stack.gateway}/devices", timeout=30).content)
        device = devices.devices[0].deviceId
        page.fill("#q-devices", device)
        page.fill("#q-columns", "eventOffset,deviceId,status")
        page.fill("#q-limit", "7")
        page.click("#q-show")
        page.wait_for_function("() => document.querySelectorAll('#query-body tr').length > 0", timeout=30_000)
        shown = page.eval_on_selector_all("#query-body tr", "rows => rows.map(r => r.cells[1].textContent)")
        href = page.get_attribute("#query-link", "href")
        assert href is not None and href.startswith("/merged.csv?")
        got = list(csv.reader(io.StringIO(httpx.get(stack.gateway + href, timeout=60).text)))
        assert got[0] == ["eventOffset", "deviceId", "status"]
        assert 0 < len(got) - 1 <= 7 and all(r[1] == device for r in got[1:])
        assert shown == [r[1] for r in got[1:]], "the panel shows the rows its link returns"
        page.screenshot(path=str(ARTIFACTS / "dashboard-scenario.png"), full_page=True)
        assert not errors, errors

        # ---- the run's series covers the drain; the report -------------------------------
        def drained() -> bool:
            doc = PipelineStatus.model_validate_json(httpx.get(f"{stack.gateway}/status", timeout=15).content)
            series = read_series(series_path(layout.run_series, run_id))
            last = series.during_run()[-1] if series and series.during_run() else None
            return doc.accounting.drained and last is not None and last.lag_offsets == 0

        wait_for(drained, 300, "the pipeline drained and sampled", logs=stack.logs("gateway", "spark"))
        out = tmp_path / "report"
        res = _cli(stack, "report", "--out", str(out))  # the last run: this one
        assert res.returncode == 0, res.stdout + res.stderr
        html, pdf = out / f"report-{run_id}.html", out / f"report-{run_id}.pdf"
        assert html.exists() and pdf.exists()

        offline = browser.new_context(offline=True, viewport={"width": 1000, "height": 1400})
        report = offline.new_page()
        report.goto(html.as_uri())
        assert report.get_attribute("body", "data-run") == run_id
        assert report.get_attribute("body", "data-ok") == "true"
        for chart in CHARTS:
            fig = report.locator(f"figure[data-chart={chart}]")
            assert int(fig.get_attribute("data-points") or 0) > 0, f"chart {chart} has no data"
            assert fig.locator("svg path").count() > 3, f"chart {chart} draws nothing"
        text = report.inner_text("body")
        for section in (
            "The architecture",
            "What was asked",
            "What came out",
            "Rejected, with the reasons",
            "The verdict",
            "Freshness",
            "Requested against achieved",
            "Spark batch durations",
            "Lag over time",
            "Per-device figures",
        ):
            assert section in text, section
        assert f"{status.run.params.seed}" in text and "ramp profile" in text and device in text
        ended = stack.generator_status()
        assert f"{ended.sent:,}" in text, "the run's produced count"
        offline.close()

        page.goto(f"{stack.gateway}/report?run={run_id}")
        assert page.get_attribute("body", "data-run") == run_id
        assert httpx.get(f"{stack.gateway}/report?run=0123abcd", timeout=120).status_code == 404
        assert httpx.get(f"{stack.gateway}/report?run=../etc", timeout=10).status_code == 422

    # ---- the PDF: every page renders; the text is the run's ------------------------------------
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "page")], check=True)
    rendered = sorted(tmp_path.glob("page-*.png"))
    assert len(rendered) == pages and 3 <= pages <= 12, (pages, rendered)
    for png in rendered:
        shutil.copy(png, ARTIFACTS / f"report-{png.name}")
    pdf_text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert f"devicestream run {run_id}" in pdf_text and "verify --run: OK" in pdf_text
    assert f"{ended.sent:,}" in pdf_text and device in pdf_text
