"""The datasheet in a real browser (Debian's Chromium, driven by Playwright), with the network cut off:
every chart renders, with the bars its data gives, and the page logs no error."""

from __future__ import annotations

import shutil

import pytest

from clipfactory.disclosures import write_reports
from clipfactory.disclosures.datasheet import charts

from .conftest import write_version

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, path):
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:  # the page must need nothing from the network
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_function("document.body.dataset.charts === 'done'", timeout=30_000)
    return page, errors, requests


def test_datasheet_charts_render_offline(browser, synthetic):
    cat, s, out, manifest = synthetic
    res = write_reports(cat, s, out, manifest)
    page, errors, requests = _open(browser, out / "datasheet.html")
    try:
        n = len(charts(res["facts"]))
        assert page.evaluate("window.chartErrors") == []
        assert page.evaluate("window.chartsRendered") == n
        assert page.locator(".chart svg").count() == n
        # Three datasets (Kinetics-400, stock, owned): a bar of hours and one of clips for each.
        assert page.locator("#chart-datasets svg .mark-rect path").count() == 6
        labels = page.locator("#chart-datasets svg text").all_text_contents()
        assert {"Kinetics-400", "stock", "Owned media"} <= set(labels)
        assert errors == [] and requests == []
    finally:
        page.close()


def test_empty_build_datasheet_renders(browser, synthetic, tmp_path):
    cat, s, _out, _manifest = synthetic
    out, manifest = write_version(tmp_path / "e", "synthetic-v9", 9, {})
    res = write_reports(cat, s, out, manifest)
    page, errors, requests = _open(browser, out / "datasheet.html")
    try:
        assert page.evaluate("window.chartsRendered") == len(charts(res["facts"]))
        assert page.locator("#chart-datasets svg .mark-rect path").count() == 0
        assert errors == [] and requests == []
    finally:
        page.close()
