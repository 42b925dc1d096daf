"""`devicestream report [--run ID] [--out DIR]`: one generator run shown as a self-contained HTML
page and a PDF printed from it by headless Chromium (figures.py gathers, charts.py draws with
matplotlib, page.py lays out). The gateway serves the same page at GET /report?run=ID by running
this command (services/gateway/routes/report.py)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contract.layout import DataLayout

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ReportError(RuntimeError):
    """The report could not be written (no Chromium for the PDF, Chromium failed); says what to fix."""


@dataclass(frozen=True)
class Written:
    run_id: str
    html: Path
    pdf: Path | None
    ok: bool


def chromium() -> str:
    for c in CHROMIUM_CANDIDATES:
        found = shutil.which(c)
        if found:
            return found
    raise ReportError(
        "no Chromium to print the PDF: install Debian's chromium (scripts/install.sh), or use --html-only"
    )


def print_pdf(html: Path, pdf: Path, timeout_s: float = 120.0) -> None:
    """Print `html` to `pdf` with headless Chromium (its own throw-away profile, no network)."""
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        args = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"chromium did not print {pdf} within {timeout_s:g} s") from None
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ReportError(f"chromium could not print {pdf} (exit {done.returncode}): {' | '.join(tail)}")


def make_report(
    layout: DataLayout, run_id: str | None, out_dir: Path, *, pdf: bool = True, wait_s: float = 0.0
) -> Written:
    """Write report-<run>.html (and .pdf) into `out_dir`. Raises figures.ReportInputError for an
    unknown run, ReportError when the PDF cannot be printed."""
    from devicestream.report.figures import collect
    from devicestream.report.page import render_page

    figures = collect(layout, run_id, PROJECT_ROOT, wait_s=wait_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"report-{figures.run_id}.html"
    tmp = html.with_suffix(".html.tmp")
    tmp.write_text(render_page(figures), encoding="utf-8")
    tmp.replace(html)
    written_pdf = None
    if pdf:
        written_pdf = html.with_suffix(".pdf")
        print_pdf(html, written_pdf)
    return Written(figures.run_id, html, written_pdf, figures.verdict.ok)
