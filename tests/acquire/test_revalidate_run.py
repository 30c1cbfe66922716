"""Revalidation is a run of the stage ``acquire.revalidate``: a ``runs`` row and one outcome row per source."""

from __future__ import annotations

import json

import pytest
from cf_acquire_server import Route, fake_mp4

from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord


@pytest.fixture
def env(tmp_path, monkeypatch, own_settings):
    (tmp_path / "clipfactory.toml").write_text("[acquire.http]\nallow_private_addresses = true\n")
    return load_settings(
        overrides={"catalog": str(tmp_path / "cat.duckdb"), "store": str(tmp_path / "store")}
    )


def fetched(settings, server, names: list[str]) -> Catalog:
    """Sources url:<name> served at /<name>.mp4, fetched once."""
    from clipfactory.acquire.driver import fetch_sources

    for i, n in enumerate(names):
        server.add(f"/{n}.mp4", body=fake_mp4(8_000, i), etag=f'"{n}-1"')
    cat = Catalog(settings.catalog)
    with cat.write() as con:
        upsert_records(
            con,
            [SourceRecord(source_id=f"url:{n}", platform="web", url=server.url(f"/{n}.mp4")) for n in names],
        )
    assert fetch_sources(settings)["kept"] == len(names)
    return cat


def outcomes_of(cat: Catalog, run_id: str) -> dict[str, tuple]:
    rows = cat.query(
        "SELECT item_id, stage, status, reason FROM stage_outcomes WHERE run_id = ? ORDER BY item_id",
        [run_id],
    )
    return {r["item_id"]: (r["stage"], r["status"], r["reason"]) for r in rows}


def test_revalidation_is_a_finished_run_with_an_outcome_per_source(env, server):
    from clipfactory.acquire.revalidate import revalidate_sources

    cat = fetched(env, server, ["alive", "gone", "noai"])
    server.routes["/gone.mp4"] = Route(status=404, body=b"")
    server.routes["/noai.mp4"].headers = [("X-Robots-Tag", "noai")]
    r = revalidate_sources(env)
    (run,) = cat.query("SELECT command, status, finished_at FROM runs WHERE run_id = ?", [r["run_id"]])
    assert (run["command"], run["status"]) == ("revalidate", "finished") and run["finished_at"] is not None
    assert outcomes_of(cat, r["run_id"]) == {
        "url:alive": ("acquire.revalidate", "kept", None),
        "url:gone": ("acquire.revalidate", "dropped", "fetch.http_404"),
        "url:noai": ("acquire.revalidate", "dropped", "consent.x_robots_noai"),
    }
    # The evidence rows and the takedown queue name that run.
    attempts = cat.query(
        "SELECT DISTINCT run_id, source_id FROM fetch_attempts WHERE purpose = 'revalidate' ORDER BY source_id"
    )
    assert [(a["run_id"], a["source_id"]) for a in attempts] == [
        (r["run_id"], "url:alive"),
        (r["run_id"], "url:gone"),
        (r["run_id"], "url:noai"),
    ]
    queue = cat.query("SELECT source_id, evidence FROM takedown_queue ORDER BY source_id")
    assert [q["source_id"] for q in queue] == ["url:gone", "url:noai"]
    assert {json.loads(q["evidence"])["run_id"] for q in queue} == {r["run_id"]}
    # The alive source's row is not rewritten: revalidation has no output records.
    assert (
        cat.query(
            "SELECT output_ids FROM stage_outcomes WHERE run_id = ? AND item_id = 'url:alive'", [r["run_id"]]
        )[0]["output_ids"]
        == []
    )


def test_every_revalidation_records_each_source_again(env, server):
    from clipfactory.acquire.revalidate import revalidate_sources

    cat = fetched(env, server, ["a", "b"])
    first = revalidate_sources(env)
    second = revalidate_sources(env)  # nothing changed in between: every source is still checked and recorded
    assert first["run_id"] != second["run_id"]
    for r in (first, second):
        assert outcomes_of(cat, r["run_id"]) == {
            "url:a": ("acquire.revalidate", "kept", None),
            "url:b": ("acquire.revalidate", "kept", None),
        }
        assert [it["status"] for it in r["items"]] == ["alive", "alive"]
    assert server.headers_of("/a.mp4")[-1]["If-None-Match"] == '"a-1"'
    runs = cat.query("SELECT status FROM runs WHERE command = 'revalidate'")
    assert [x["status"] for x in runs] == ["finished", "finished"]


def test_a_revalidation_whose_checks_break_is_a_failed_run(env, server):
    from clipfactory.acquire.revalidate import revalidate_sources
    from clipfactory.errors import ErrorBudgetExceeded

    cat = fetched(env, server, ["a", "b", "c"])

    def broken(platform, host, source_id=None):
        raise RuntimeError("platform terms table is unreadable")

    with pytest.raises(ErrorBudgetExceeded, match="acquire.revalidate"):
        revalidate_sources(env, platform_check=broken)
    (run,) = cat.query("SELECT run_id, status FROM runs WHERE command = 'revalidate'")
    assert run["status"] == "failed"
    rows = cat.query(
        "SELECT item_id, status, error_kind FROM stage_outcomes WHERE run_id = ?", [run["run_id"]]
    )
    assert sorted((x["item_id"], x["status"], x["error_kind"]) for x in rows) == [
        ("url:a", "failed", "bug"),
        ("url:b", "failed", "bug"),
        ("url:c", "failed", "bug"),
    ]


def test_outcome_rows_left_unloaded_are_loaded_by_the_next_revalidation(env, server):
    """A revalidation that died after its outcome rows were stored loses nothing: the next one loads them."""
    from clipfactory.acquire.driver import policy_settings
    from clipfactory.acquire.revalidate import revalidate_sources, select_fetched
    from clipfactory.pipelines import Run
    from clipfactory.stages.acquire.revalidate import RevalidateStage

    cat = fetched(env, server, ["a", "gone"])
    server.routes["/gone.mp4"] = Route(status=410, body=b"")
    with Run(env, command="revalidate", catalog=cat, workers=1) as run:  # the stage only, nothing loaded
        stage = RevalidateStage(
            env.stage_config("acquire.http"), run.context(policy_settings=policy_settings(env))
        )
        run.stage(stage, select_fetched(cat), retries=1)
    assert cat.query("SELECT count(*) AS n FROM takedown_queue")[0]["n"] == 0
    later = revalidate_sources(env)
    queue = cat.query("SELECT source_id, evidence FROM takedown_queue")
    assert [(q["source_id"], json.loads(q["evidence"])["run_id"]) for q in queue] == [
        ("url:gone", run.run_id)
    ]
    assert later["queued_for_takedown"] == []  # already pending from the earlier run
    ids = {
        x["run_id"]
        for x in cat.query("SELECT DISTINCT run_id FROM fetch_attempts WHERE purpose = 'revalidate'")
    }
    assert ids == {run.run_id, later["run_id"]}


def test_acquire_revalidate_options_override_those_of_acquire_http(env, server):
    from clipfactory.acquire.revalidate import revalidate_sources

    cat = fetched(env, server, ["a"])
    settings = load_settings(
        overrides={"catalog": env.catalog, "store": env.store},
        sets=["acquire.revalidate.contact_url=https://example.org/recheck"],
    )
    r = revalidate_sources(settings)
    fetch_ua, recheck_ua = (h["User-Agent"] for h in server.headers_of("/a.mp4"))
    assert "+https://example.org/clipfactory-bot" in fetch_ua  # acquire.http's default
    assert "+https://example.org/recheck" in recheck_ua
    # [acquire.http] still applies where [acquire.revalidate] says nothing: the loopback server is allowed,
    # so the recheck reached it and the source is alive.
    assert settings.stage_config("acquire.http") == {"allow_private_addresses": True}
    assert outcomes_of(cat, r["run_id"]) == {"url:a": ("acquire.revalidate", "kept", None)}
    assert [it["status"] for it in r["items"]] == ["alive"]
