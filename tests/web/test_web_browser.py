"""The web UI in a real browser (Debian's Chromium, driven by Playwright) against a uvicorn server on
127.0.0.1: a creator finds an excerpt of a built video, an unrelated video gets no match, a takedown request
goes through the queue, the operator approves it and lookup then says the footage was removed, and the clip
browser plays a clip.

The tests run in order on one catalog (the takedown changes it). With CLIPFACTORY_WEB_SCREENSHOTS=DIR they
also save a screenshot of each page into DIR (docs/web/*.png)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import TOKEN, Server

pytest.importorskip("fastapi", reason="the web UI needs the [web] extra")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("CLIPFACTORY_WEB_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(world):
    from clipfactory.web import WebConfig, create_app

    app = create_app(world.settings, WebConfig(operator_token=TOKEN))
    with Server(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-gpu",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--mute-audio",
            ],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def state():
    return {}


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1000, "height": 760})
    ctx.set_default_timeout(120_000)  # a loaded CI machine: the takedown behind "approve" takes seconds
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.problems = problems
    yield pg
    ctx.close()


def shot(pg, name: str) -> None:
    """With CLIPFACTORY_WEB_SCREENSHOTS set: the page as a small PNG (64 colours) for docs/web.md."""
    if SHOTS:
        import io

        from PIL import Image

        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        img = Image.open(io.BytesIO(pg.screenshot(full_page=False))).convert("RGB")
        img.quantize(64).save(Path(SHOTS) / f"{name}.png", optimize=True)


def _upload(pg, path: Path) -> str:
    pg.goto("/")
    pg.set_input_files("#upload-form input[type=file]", str(path))
    pg.click("#upload-form button[type=submit]")
    pg.wait_for_selector("#verdict")
    pg.wait_for_load_state("load")  # the thumbnails too
    return pg.inner_text("#verdict")


def _login(pg) -> None:
    pg.goto("/operator/login")
    pg.fill("input[name=name]", "olga")
    pg.fill("input[name=token]", TOKEN)
    shot(pg, "login")
    pg.click("#login-form button[type=submit]")
    pg.wait_for_url("**/operator")


def test_creator_finds_an_excerpt_of_a_built_video(page, world, state):
    page.goto("/")
    shot(page, "lookup")
    verdict = _upload(page, world.files["excerpt"])
    assert verdict.startswith("Match")
    text = page.inner_text("main")
    a = world.sources["a"][0]
    assert a.source_id in text and world.build["build_id"] in text and "CC-BY-4.0" in text
    assert world.sources["b"][0].source_id not in text
    # the excerpt (seconds 1.5-4.5 of the source) touches both 3-second clips of the source, in the build
    for c in world.sources["a"][1]:
        assert f"clip {c.start_ms / 1000:.1f}s–{c.end_ms / 1000:.1f}s: {world.build['build_id']}" in text
    assert page.locator(".clip img").count() >= 1
    assert page.evaluate("Array.from(document.querySelectorAll('.clip img')).every(i => i.naturalWidth > 0)")
    shot(page, "lookup_match")
    state["request_link"] = page.get_attribute("#request-link", "href")
    assert page.problems == []


def test_unrelated_video_gets_no_match(page, world):
    verdict = _upload(page, world.files["unrelated"])
    assert verdict.startswith("No match")
    searched = page.inner_text("#searched")
    assert "usable frames of your file" in searched and "2 sources" in searched
    assert "fingerprint index holds" in page.inner_text("#freshness")
    shot(page, "lookup_no_match")


def test_takedown_request_goes_through_the_queue(page, world, state):
    assert state.get("request_link"), "the match page offered a request"
    page.goto(state["request_link"])
    page.fill("input[name=contact]", "alice@example.org")
    page.select_option("select[name=relationship]", "owner")
    page.fill("textarea[name=statement]", "I made this video and did not agree to its use.")
    shot(page, "request_form")
    page.click("#request-form button[type=submit]")
    page.wait_for_selector("#request-id")
    rid = page.inner_text("#request-id")
    assert page.inner_text("#request-status") == "pending"
    state["rid"], state["status_url"] = rid, page.url
    shot(page, "request_status")
    row = world.catalog.query(
        "SELECT status, source_ids, len(query_pdq) AS n FROM takedown_requests WHERE request_id = ?", [rid]
    )
    assert row[0]["status"] == "pending" and row[0]["source_ids"] == [world.sources["a"][0].source_id]
    assert row[0]["n"] > 0  # the file's fingerprints are kept, not the file

    _login(page)
    shot(page, "dashboard")
    page.goto("/operator/requests")
    assert rid in page.inner_text("#requests")
    shot(page, "requests")
    page.click(f"text={rid}")
    page.wait_for_selector("#approve-form")
    assert "alice@example.org" in page.inner_text("main")


def test_operator_approves_and_lookup_then_says_removed(page, world, state):
    _login(page)
    page.goto(f"/operator/requests/{state['rid']}")
    page.click("#approve-form button[type=submit]")
    page.wait_for_selector("#receipt")
    receipt = page.inner_text("#receipt")
    assert "Takedown" in receipt and world.sources["a"][0].source_id in receipt
    assert page.inner_text("#request-status") == "approved"
    assert "olga" in page.inner_text("#actions")
    shot(page, "request_approved")
    a = world.sources["a"][0].source_id
    assert world.catalog.scalar("SELECT count(*) FROM sources WHERE source_id = ?", [a]) == 0
    # the requester's page says so, and lookup answers that the footage was removed
    page.goto(state["status_url"])
    assert page.inner_text("#request-status") == "approved"
    verdict = _upload(page, world.files["excerpt"])
    assert verdict.startswith("Removed"), verdict
    shot(page, "lookup_removed")
    # the CLI says the same
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    args = [
        "lookup",
        str(world.files["excerpt"]),
        "--catalog",
        str(world.catalog.path),
        "--store",
        str(world.store.root),
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0 and "removed: a takedown" in out.output, out.output
    tomb = world.catalog.scalar("SELECT tombstone_id FROM tombstones WHERE source_id = ?", [a])
    assert tomb in out.output


def test_clip_browser_plays_a_clip(page, world):
    _login(page)
    page.goto("/operator/clips")
    shot(page, "clips")
    b_clip = world.sources["b"][1][0]
    page.click(f"a[href='/operator/clips/{b_clip.clip_id}']")
    page.wait_for_selector("#player")
    page.evaluate("document.getElementById('player').muted = true")
    page.evaluate("document.getElementById('player').play()")
    # (wait_for_function evaluates a string, which the page's Content-Security-Policy forbids: poll instead)
    deadline = time.monotonic() + 60
    while page.evaluate("document.getElementById('player').currentTime") < 0.5:
        assert time.monotonic() < deadline, "the clip did not play"
        page.wait_for_timeout(100)
    assert page.evaluate("document.getElementById('player').videoWidth") == 192
    page.evaluate("document.getElementById('player').pause()")
    assert page.problems == []
    assert b_clip.clip_id in page.inner_text("#clip-json")
    assert world.sources["b"][0].source_id in page.inner_text("#explain")
    shot(page, "clip")
    page.goto("/operator/search?q=b")
    assert b_clip.clip_id in page.inner_text("main")  # the source titled "b", in captions and titles
    shot(page, "search")
    page.goto("/transparency")
    assert world.build["build_id"] in page.inner_text("main")
    shot(page, "transparency")
    assert page.problems == []
