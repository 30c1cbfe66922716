"""HTTP 429 with Retry-After through `clipfactory fetch`: a Retry-After too long to wait fails its origin's
items at once as fetch.rate_limited, is recorded in the catalog, and later commands send that origin
nothing until the time it asked for has passed."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from cf_acquire_server import Route, fake_mp4
from typer.testing import CliRunner

from clipfactory.catalog import Catalog, upsert_records
from clipfactory.records import SourceRecord


@pytest.fixture
def env(tmp_path, monkeypatch, own_settings):
    return {"catalog": str(tmp_path / "cat.duckdb"), "store": str(tmp_path / "store")}


def add_sources(env, rows: list[tuple[str, str]], dataset: str = "web") -> None:
    cat = Catalog(env["catalog"])
    with cat.write() as con:
        upsert_records(con, [SourceRecord(source_id=sid, platform="web", url=url) for sid, url in rows])
        for sid, _ in rows:
            con.execute("INSERT INTO memberships (dataset, source_id) VALUES (?, ?)", [dataset, sid])


def cli_fetch(env, *sets: str) -> tuple[dict, str, float]:
    """`clipfactory fetch --json` with small limits; (result, output of the table form, seconds)."""
    from clipfactory.cli.app import app

    args = ["fetch", "--catalog", env["catalog"], "--store", env["store"], "--dataset", "web"]
    opts = ["acquire.http.allow_private_addresses=true", "acquire.http.max_retry_after_s=30", *sets]
    for s in opts:
        args += ["--set", s]
    t0 = time.monotonic()
    res = CliRunner().invoke(app, [*args, "--json"])
    took = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), res.output, took


def media_hits(srv) -> int:
    return sum(n for p, n in srv.hits.items() if p.endswith(".mp4"))


def test_long_retry_after_fails_fast_is_remembered_and_spares_other_origins(env, server, server2):
    server.add(
        "/rate_long/v.mp4", body=fake_mp4(1000, 1), fail_times=10**6, fail_headers=[("Retry-After", "7200")]
    )
    server.add("/rate/v.mp4", body=fake_mp4(1000, 2), fail_times=1, fail_headers=[("Retry-After", "2")])
    server2.add("/ok.mp4", body=fake_mp4(1000, 3))
    add_sources(
        env,
        [
            ("url:long", server.url("/rate_long/v.mp4")),
            ("url:rate", server.url("/rate/v.mp4")),
            ("url:other", server2.url("/ok.mp4")),
        ],
    )
    before = time.time()
    r, _, took = cli_fetch(env, "acquire.http.per_host_connections=1")
    # (a) no wait: neither the 7200 s nor max_retry_after_s (30 s); the other origin's item is fetched
    assert took < 10, took
    assert (r["kept"], r["failed"]) == (1, 2)
    assert r["reasons"] == {"fetch.rate_limited": 2}  # the documented reason, not failed.transient
    assert server2.hits["/ok.mp4"] == 1
    assert server.hits["/rate_long/v.mp4"] == 1
    (paused,) = r["paused_origins"]
    assert paused["origin"] == server.origin and "7200" in paused["why"]
    until = datetime.fromisoformat(paused["not_before"].replace("Z", "+00:00"))
    assert abs(until.timestamp() - (before + 7200)) < 5
    cat = Catalog(env["catalog"])
    why = {
        r["item_id"]: r["error"]
        for r in cat.query("SELECT item_id, error FROM stage_outcomes WHERE status = 'failed'")
    }
    assert paused["not_before"] in why["url:rate"] and paused["not_before"] in why["url:long"]
    row = cat.query("SELECT host, url, not_before FROM host_pauses")
    assert [(x["host"], x["url"]) for x in row] == [(server.origin, server.url("/rate_long/v.mp4"))]

    # (b) the next command, within the pause: no request at all to that origin, the reason with the time
    hits = dict(server.hits)
    r2, _, took2 = cli_fetch(env, "acquire.http.per_host_connections=1")
    assert dict(server.hits) == hits
    assert r2["reasons"] == {"fetch.rate_limited": 2} and r2["selected"] == 2
    assert r2["paused_origins"][0]["not_before"] == paused["not_before"]
    assert took2 < 10, took2
    _, text, _ = cli_fetch(env)  # the table form names the origin and the time too
    assert server.origin in text and paused["not_before"] in text and "fetch.rate_limited" in text
    assert dict(server.hits) == hits


def test_a_recorded_pause_that_passes_lets_the_next_command_fetch(env, server):
    # Retry-After 2 is over max_retry_after_s = 1: the item fails at once and the pause is recorded.
    server.add("/a.mp4", body=fake_mp4(1000, 1), fail_times=1, fail_headers=[("Retry-After", "2")])
    add_sources(env, [("url:a", server.url("/a.mp4"))])
    t0 = time.monotonic()
    r, _, _ = cli_fetch(env, "acquire.http.max_retry_after_s=1")
    assert r["reasons"] == {"fetch.rate_limited": 1} and server.hits["/a.mp4"] == 1
    # (b) within the 2 seconds: not asked
    r2, _, _ = cli_fetch(env, "acquire.http.max_retry_after_s=1")
    assert r2["reasons"] == {"fetch.rate_limited": 1} and server.hits["/a.mp4"] == 1
    # (c) once it has passed: fetched
    time.sleep(max(0.0, 2.1 - (time.monotonic() - t0)))
    r3, _, _ = cli_fetch(env, "acquire.http.max_retry_after_s=1")
    assert r3["kept"] == 1 and r3["reasons"] == {} and r3["paused_origins"] == []
    assert server.hits["/a.mp4"] == 2


def test_a_recorded_short_pause_is_waited_out(env, server):
    """A pause left over from an earlier command that is within max_retry_after_s is waited, not skipped."""
    server.add("/a.mp4", body=fake_mp4(1000, 1), fail_times=1, fail_headers=[("Retry-After", "2")])
    add_sources(env, [("url:a", server.url("/a.mp4"))])
    # max_attempts = 1: the first command gives up after the 429, leaving a 2 s pause recorded
    r, _, _ = cli_fetch(env, "acquire.http.max_attempts=1")
    assert r["reasons"] == {"fetch.rate_limited": 1}
    first = server.times_of("/a.mp4")[0]
    r2, _, _ = cli_fetch(env)
    assert r2["kept"] == 1
    second = server.times_of("/a.mp4")[1]
    assert second - first >= 1.9  # the next command waited for what was left of the 2 s


def test_a_wait_is_logged_and_other_origins_are_not_held_up(server, server2, fetch, caplog):
    server.add("/a.mp4", body=fake_mp4(1000, 1), fail_times=1, fail_headers=[("Retry-After", "1")])
    other = server2.add("/b.mp4", body=fake_mp4(1000, 2))
    with caplog.at_level("INFO", logger="clipfactory.acquire.http"):
        outs, _ = fetch([server.url("/a.mp4"), other], max_retry_after_s=5)
    assert [o.status for o in outs] == ["kept", "kept"]
    assert any(server.origin in m and "waiting" in m for m in caplog.messages), caplog.messages
    t = server.times_of("/a.mp4")
    assert t[1] - t[0] >= 0.95
    assert server2.times_of("/b.mp4")[0] < t[0] + 0.9  # not paused by the other origin's 429


def test_the_stage_run_uses_honours_a_recorded_pause(env, server):
    """`clipfactory run` fetches through fetch_stage_run, whose acquire.http stage reads host_pauses too."""
    from cf_acquire_helpers import allow_all

    from clipfactory.stage import StageContext
    from clipfactory.stages.acquire.http import HttpFetchStage

    server.add("/a.mp4", body=fake_mp4(1000, 1), fail_times=10**6, fail_headers=[("Retry-After", "600")])
    add_sources(env, [("url:a", server.url("/a.mp4"))])
    r, _, _ = cli_fetch(env)
    assert r["reasons"] == {"fetch.rate_limited": 1} and server.hits["/a.mp4"] == 1
    hits = dict(server.hits)
    stage = HttpFetchStage(
        {"allow_private_addresses": True, "max_retry_after_s": 30},
        StageContext(store_root=env["store"], catalog_path=env["catalog"]),
        platform_check=allow_all,
    )
    try:
        (res,) = stage.process_batch(
            [SourceRecord(source_id="url:a", platform="web", url=server.url("/a.mp4"))]
        )
    finally:
        stage.teardown()
    assert res.status == "failed" and res.reason == "fetch.rate_limited"
    assert server.origin in res.error and "not asked again before" in res.error
    assert dict(server.hits) == hits  # not even robots.txt


def test_explain_names_the_pause_still_in_force(env, server):
    from clipfactory.acquire.evidence import explain_section

    server.add("/a.mp4", body=fake_mp4(1000, 1), fail_times=10**6, fail_headers=[("Retry-After", "600")])
    add_sources(env, [("url:a", server.url("/a.mp4"))])
    r, _, _ = cli_fetch(env)
    with Catalog(env["catalog"]).read() as con:
        ex = explain_section(con, "url:a")
    (p,) = ex["host_pauses"]
    assert p["host"] == server.origin and "600" in p["why"]
    json.dumps(ex)


def test_a_long_retry_after_on_robots_txt_closes_the_origin(server, server2, fetch):
    server.routes["/robots.txt"] = Route(status=429, body=b"slow down", headers=[("Retry-After", "3600")])
    server.add("/a.mp4", body=fake_mp4(1000, 1))
    server.add("/b.mp4", body=fake_mp4(1000, 2))
    other = server2.add("/c.mp4", body=fake_mp4(1000, 3))
    t0 = time.monotonic()
    outs, _ = fetch([server.url("/a.mp4"), server.url("/b.mp4"), other], max_retry_after_s=30)
    assert time.monotonic() - t0 < 10
    assert outs[2].status == "kept"
    # robots.txt answered 429: its item fails as robots unreachable; the origin is not asked for anything more
    assert {o.reason for o in outs[:2]} <= {"fetch.robots_unreachable", "fetch.rate_limited"}
    assert server.hits["/robots.txt"] == 1 and server.hits["/a.mp4"] == server.hits["/b.mp4"] == 0
    pauses = [p for o in outs for p in o.evidence.host_pauses]
    assert [(p["host"], p["url"]) for p in pauses] == [(server.origin, server.url("/robots.txt"))]
