"""The acquire.http stage through the executor, the evidence tables, revalidation, link health and the CLI."""

from __future__ import annotations

import json

import pytest
from cf_acquire_helpers import allow_all
from cf_acquire_server import Route, fake_mp4
from typer.testing import CliRunner

from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord


@pytest.fixture
def env(tmp_path, monkeypatch, own_settings):
    # The test server is on 127.0.0.1, which the fetcher refuses unless told (CLI runs read this file too).
    (tmp_path / "clipfactory.toml").write_text("[acquire.http]\nallow_private_addresses = true\n")
    s = load_settings(overrides={"catalog": str(tmp_path / "cat.duckdb"), "store": str(tmp_path / "store")})
    return s


def add_sources(settings, rows: list[tuple[str, str, str]], platform: str = "web") -> None:
    """rows: (source_id, url, dataset)"""
    cat = Catalog(settings.catalog)
    with cat.write() as con:
        upsert_records(con, [SourceRecord(source_id=sid, platform=platform, url=url) for sid, url, _ in rows])
        for sid, _, ds in rows:
            con.execute("INSERT INTO memberships (dataset, source_id) VALUES (?, ?)", [ds, sid])


def test_stage_is_registered_with_a_documented_config():
    from clipfactory import registry
    from clipfactory.stage import config_docs
    from clipfactory.stages.acquire.http import HttpFetchStage

    assert registry.get("acquire.http") is HttpFetchStage
    assert HttpFetchStage.batch_size >= 64
    docs = config_docs(HttpFetchStage.Config)
    assert docs and all(d["description"] for d in docs.values())
    stage = HttpFetchStage({})
    assert stage.process_batch([]) == []
    assert stage.describe()["user_agent"].startswith("clipfactory/")
    with pytest.raises(Exception, match="acquire.http"):
        HttpFetchStage({"no_such_option": 1})


def test_fetch_sources_end_to_end(env, server):
    from clipfactory.acquire.driver import fetch_sources

    server.add("/ok.mp4", body=fake_mp4(50_000, 1), etag='"ok"')
    server.add("/noai.mp4", body=fake_mp4(50_000, 2), headers=[("X-Robots-Tag", "noai")])
    add_sources(
        env,
        [
            ("url:ok", server.url("/ok.mp4"), "web-a"),
            ("url:noai", server.url("/noai.mp4"), "web-a"),
            ("url:missing", server.url("/missing.mp4"), "web-b"),
        ],
    )
    add_sources(env, [("youtube:dQw4w9WgXcQ", server.url("/ok.mp4"), "web-b")], platform="youtube")
    r = fetch_sources(env)
    assert (r["selected"], r["kept"], r["dropped"], r["failed"]) == (4, 1, 3, 0)
    assert r["reasons"] == {
        "consent.x_robots_noai": 1,
        "fetch.http_404": 1,
        "policy.platform_terms_no_permission:youtube": 1,
    }
    assert r["host_documents_fetched"] == {"robots.txt": 1, "tdmrep.json": 1}
    assert r["spawning_queries"] == {"requests": 0, "retries": 0, "errors": 0}  # no key: not asked
    cat = Catalog(env.catalog)
    src = cat.query("SELECT * FROM sources WHERE source_id = 'url:ok'")[0]
    assert src["blob_uri"] and src["size_bytes"] == 50_000 and src["acquired_at"]
    # Evidence is queryable from the catalog.
    assert cat.scalar("SELECT count(*) FROM fetch_attempts") == 3  # youtube: refused before any request
    denial = cat.query(
        "SELECT signal, value, phase FROM consent_checks WHERE verdict = 'deny' AND source_id = 'url:noai'"
    )
    assert denial == [{"signal": "x-robots-tag", "value": "noai", "phase": "headers"}]
    docs = cat.query("SELECT kind, status_code, state FROM host_documents ORDER BY kind")
    assert [d["kind"] for d in docs] == ["robots.txt", "tdmrep.json"]
    status = {r["source_id"]: r["status"] for r in cat.query("SELECT * FROM link_status")}
    assert status == {
        "url:ok": "alive",
        "url:noai": "opted_out",
        "url:missing": "gone",
        "youtube:dQw4w9WgXcQ": "blocked",
    }
    # A second run fetches nothing new and loads no evidence twice.
    r2 = fetch_sources(env)
    assert r2["kept"] == 0 and r2["skipped"] == 3 and r2["selected"] == 3
    assert cat.scalar("SELECT count(*) FROM fetch_attempts") == 3
    assert server.hits["/robots.txt"] == 1


def test_explain_section(env, server):
    from clipfactory.acquire.driver import fetch_sources
    from clipfactory.acquire.evidence import explain_section

    server.add(
        "/a.mp4",
        body=fake_mp4(1000),
        headers=[("tdm-reservation", "1"), ("tdm-policy", "https://example.org/p")],
    )
    add_sources(env, [("url:a", server.url("/a.mp4"), "d")])
    fetch_sources(env)
    cat = Catalog(env.catalog)
    with cat.read() as con:
        ex = explain_section(con, "url:a")
        assert explain_section(con, "url:nothing") is None
    assert ex["link_status"]["status"] == "opted_out"
    assert ex["denials"][0]["signal"] == "tdmrep"
    assert ex["denials"][0]["evidence"]["policy"] == "https://example.org/p"
    assert ex["attempts"][0]["response_headers"]["tdm-reservation"] == "1"
    assert {d["kind"] for d in ex["host_documents"]} == {"robots.txt", "tdmrep.json"}
    assert ex["pending_load"] is False
    json.dumps(ex)  # the explain command prints it as JSON


def test_explain_reads_evidence_not_loaded_yet(env, server, store):
    from clipfactory.acquire.evidence import explain_section
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.stage import StageContext
    from clipfactory.stages.acquire.http import HttpFetchStage

    server.add("/a.mp4", body=fake_mp4(1000))
    cat = Catalog(env.catalog)
    stage = HttpFetchStage(
        {"allow_private_addresses": True}, StageContext(store_root=str(store.root)), platform_check=allow_all
    )
    LocalExecutor(cat, retries=1).run(
        [stage], [SourceRecord(source_id="url:a", platform="web", url=server.url("/a.mp4"))]
    )
    with cat.read() as con:
        ex = explain_section(con, "url:a")
    assert ex["pending_load"] is True and ex["attempts"][0]["status_code"] == 200


def test_host_documents_reused_across_runs(env, server):
    from clipfactory.acquire.driver import fetch_sources

    server.add("/a.mp4", body=fake_mp4(1000, 1))
    server.add("/b.mp4", body=fake_mp4(1000, 2))
    server.robots("User-agent: *\nDisallow: /private/\n")
    add_sources(env, [("url:a", server.url("/a.mp4"), "d")])
    fetch_sources(env)
    add_sources(env, [("url:b", server.url("/b.mp4"), "d")])
    r = fetch_sources(env)
    assert r["kept"] == 1
    assert r["host_documents_fetched"] == {"robots.txt": 0, "tdmrep.json": 0}  # primed from the catalog
    assert server.hits["/robots.txt"] == 1


def test_revalidate_marks_and_queues(env, server):
    from clipfactory.acquire.driver import fetch_sources
    from clipfactory.acquire.health import link_health
    from clipfactory.acquire.revalidate import revalidate_sources, takedown_queue

    names = ["same", "gone", "noai", "changed", "tdm"]
    for i, n in enumerate(names):
        server.add(f"/{n}.mp4", body=fake_mp4(20_000, i), etag=f'"{n}-1"')
    add_sources(env, [(f"url:{n}", server.url(f"/{n}.mp4"), "web") for n in names])
    assert fetch_sources(env)["kept"] == 5
    # The world changes.
    server.routes["/gone.mp4"] = Route(status=410, body=b"gone")
    server.routes["/noai.mp4"].headers = [("X-Robots-Tag", "clipfactory: noai")]
    server.routes["/changed.mp4"] = Route(body=fake_mp4(30_000, 99), etag='"changed-2"')
    server.tdmrep([{"location": "/tdm.mp4", "tdm-reservation": 1}])
    before = len(server.headers_of("/same.mp4"))
    r = revalidate_sources(env)
    assert r["checked"] == 5
    by = {it["source_id"]: it for it in r["items"]}
    assert by["url:same"]["status"] == "alive" and by["url:same"]["http_status"] == 304
    assert server.headers_of("/same.mp4")[before]["If-None-Match"] == '"same-1"'
    assert by["url:gone"]["status"] == "gone" and by["url:gone"]["reason"] == "fetch.http_410"
    assert by["url:noai"]["status"] == "opted_out" and by["url:noai"]["reason"] == "consent.x_robots_noai"
    assert by["url:changed"]["status"] == "alive" and by["url:changed"]["content_changed"] is True
    assert by["url:tdm"]["status"] == "opted_out" and by["url:tdm"]["reason"] == "consent.tdm_reserved"
    assert sorted(r["queued_for_takedown"]) == ["url:gone", "url:noai", "url:tdm"]
    q = takedown_queue(Catalog(env.catalog))
    assert {e["source_id"] for e in q} == {"url:gone", "url:noai", "url:tdm"}
    assert all(e["status"] == "pending" for e in q)
    ev = json.loads(next(e for e in q if e["source_id"] == "url:noai")["evidence"])
    assert ev["denial"][0]["signal"] == "x-robots-tag" and ev["blob_uri"]
    # A second revalidation does not queue the same sources twice.
    r2 = revalidate_sources(env)
    assert r2["queued_for_takedown"] == []
    health = link_health(Catalog(env.catalog))
    (web,) = health["datasets"]
    assert (web["alive"], web["gone"], web["opted_out"], web["takedown_pending"]) == (2, 1, 2, 3)
    assert health["total"]["sources"] == 5


def test_revalidate_a_build(env, server):
    from clipfactory.acquire.driver import fetch_sources
    from clipfactory.acquire.revalidate import revalidate_sources

    for n in ("a", "b"):
        server.add(f"/{n}.mp4", body=fake_mp4(5_000, ord(n)), etag=f'"{n}"')
    add_sources(env, [("url:a", server.url("/a.mp4"), "d"), ("url:b", server.url("/b.mp4"), "d")])
    fetch_sources(env)
    cat = Catalog(env.catalog)
    with cat.write() as con:
        con.execute("INSERT INTO builds (build_id, name, version) VALUES ('mix-v1', 'mix', 1)")
        con.execute(
            "INSERT INTO build_members (build_id, clip_id, source_id) VALUES ('mix-v1', 'c1', 'url:a')"
        )
    r = revalidate_sources(env, build="mix")
    assert [it["source_id"] for it in r["items"]] == ["url:a"]
    with pytest.raises(Exception, match="no such build"):
        revalidate_sources(env, build="nope")


def test_cli_fetch_revalidate_health(env, server):
    from clipfactory.cli.app import app

    server.add("/a.mp4", body=fake_mp4(5_000, 1), etag='"a"')
    server.add("/b.mp4", body=fake_mp4(5_000, 2), headers=[("Content-Usage", "train-ai=n")])
    add_sources(env, [("url:a", server.url("/a.mp4"), "d1"), ("url:b", server.url("/b.mp4"), "d2")])
    runner = CliRunner()
    base = ["--catalog", env.catalog]
    res = runner.invoke(app, ["fetch", *base, "--store", env.store, "--dataset", "d1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["selected"] == 1 and out["kept"] == 1
    res = runner.invoke(app, ["fetch", *base, "--store", env.store, "--json"])
    assert json.loads(res.stdout)["reasons"] == {"consent.content_usage_train_ai_n": 1}
    res = runner.invoke(app, ["fetch", *base, "--store", env.store, "--dataset", "nope"])
    assert res.exit_code == 1 and "no such dataset" in res.output
    server.routes["/a.mp4"] = Route(status=404)
    res = runner.invoke(app, ["sources", "revalidate", *base, "--store", env.store, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["queued_for_takedown"] == ["url:a"]
    res = runner.invoke(app, ["sources", "health", *base, "--json"])
    health = json.loads(res.stdout)
    by = {d["dataset"]: d for d in health["datasets"]}
    assert by["d1"]["gone"] == 1 and by["d2"]["opted_out"] == 1
    res = runner.invoke(app, ["sources", "health", *base])
    assert res.exit_code == 0 and "Link health" in res.stdout
