"""``categories`` says when hours are unknown (sources with neither a duration nor manifest spans), and a
``plan`` whose every target category is impossible fails, naming the categories and the fix. Categories come
from manifest labels mapped in a taxonomy of the test (no text model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

DATA = Path(__file__).resolve().parents[1] / "data" / "manifests"
TAX = '[categories.driving]\nprompts = ["a car on a road"]\n[categories.nature]\nprompts = ["a forest"]\n' \
      '[labels]\n"road" = "driving"\n"forest" = "nature"\n'


def _catalog(tmp_path, monkeypatch, rows: list[str], *, decide: bool = True) -> str:
    """A catalog of the manifest ``rows`` (url, licence, label, start s, end s) as dataset ``d``, decided for
    commercial use."""
    (tmp_path / "t.toml").write_text(TAX)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    cat = str(tmp_path / "c.duckdb")
    (tmp_path / "m.csv").write_text("\n".join(["video_url,licence,lab,b,e", *rows]) + "\n")
    steps = [["ingest", str(tmp_path / "m.csv"), "--dataset", "d",
              "--map", "url=video_url,license=licence,label=lab,start=b,end=e,time-unit=s"]]
    if decide:
        steps.append(["policy", "check", "--purpose", "commercial"])
    for args in steps:
        res = CliRunner().invoke(app, [*args, "--catalog", cat])
        assert res.exit_code == 0, res.output
    return cat


def test_hours_note_counts_the_sources_without_a_duration(tmp_path, monkeypatch):
    # a: a 36 s span (0.01 h); b and c: no span, no duration
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/a.mp4,CC-BY-4.0,road,0,36",
                                           "https://example.org/b.mp4,CC-BY-4.0,road,,",
                                           "https://example.org/c.mp4,CC-BY-4.0,forest,,"], decide=False)
    res = CliRunner().invoke(app, ["categories", "--catalog", cat, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    by = {c["category"]: c for c in r["categories"]}
    assert r["without_hours"] == 2
    assert "2 of 3 sources have no duration" in r["hours_note"] and "only the 1 that do" in r["hours_note"]
    assert (by["driving"]["sources"], by["driving"]["hours"], by["driving"]["without_hours"]) == (2, 0.01, 1)
    assert (by["nature"]["sources"], by["nature"]["hours"], by["nature"]["without_hours"]) == (1, 0.0, 1)
    res = CliRunner().invoke(app, ["categories", "--catalog", cat])
    assert res.exit_code == 0, res.output
    assert "note: 2 of 3 sources have no duration" in " ".join(res.output.split())


def test_every_hour_known_gives_no_note(tmp_path, monkeypatch):
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/a.mp4,CC-BY-4.0,road,0,36"], decide=False)
    r = json.loads(CliRunner().invoke(app, ["categories", "--catalog", cat, "--json"]).stdout)
    assert r["without_hours"] == 0 and "hours_note" not in r
    res = CliRunner().invoke(app, ["categories", "--catalog", cat])
    # the table is printed (a command that failed before printing would have no note either)
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "driving" in res.output and "note:" not in res.output


def test_msr_vtt_captions_have_no_durations(tmp_path):
    """MSR-VTT's caption file names videos and their captions, no times: every source's hours are unknown."""
    src = DATA / "msrvtt_test_captions_sample.json"
    n = 2  # video7010 and video7011 (clip.avi has no MSR-VTT id: a bad row)
    cat = str(tmp_path / "c.duckdb")
    res = CliRunner().invoke(app, ["ingest", str(src), "--catalog", cat])
    assert res.exit_code == 0, res.output
    r = json.loads(CliRunner().invoke(app, ["categories", "--catalog", cat, "--json"]).stdout)
    assert r["sources"] == n and r["without_hours"] == n
    assert f"{n} of {n} sources have no duration" in r["hours_note"] and "only the 0 that do" in r["hours_note"]


def test_a_plan_with_every_category_impossible_fails_naming_them(tmp_path, monkeypatch):
    # driving: no sources at all; nature: one, CC BY-NC, which commercial use may not take
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/f.mp4,CC-BY-NC-4.0,forest,0,10"])
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(app, ["plan", "--target", "driving=0.5,nature=0.5", "--budget-sources", "2",
                                   "--purpose", "commercial", "--catalog", cat, "--out", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "error:" in text and "every category of the target is impossible" in text
    assert "driving (no sources in the catalog)" in text
    assert "nature (1 sources, none that 'commercial' may acquire and use)" in text
    assert "clipfactory categories" in text and "clipfactory ingest" in text
    assert "clipfactory policy check --purpose commercial" in text
    assert "Traceback" not in text
    assert not out.exists()
    res = CliRunner().invoke(app, ["plan", "--target", "driving=1", "--budget-sources", "1", "--purpose", "commercial",
                                   "--catalog", cat, "--json"])
    assert res.exit_code == 1 and "driving (no sources in the catalog)" in " ".join(res.output.split())


def test_a_plan_with_some_category_feasible_succeeds_and_names_the_impossible_one(tmp_path, monkeypatch):
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/a.mp4,CC-BY-4.0,road,0,10",
                                           "https://example.org/b.mp4,CC-BY-4.0,road,0,10"])
    res = CliRunner().invoke(app, ["plan", "--target", "driving=0.5,nature=0.5", "--budget-sources", "2",
                                   "--purpose", "commercial", "--catalog", cat, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["planned"] == 1 and [p["category"] for p in r["impossible"]] == ["nature"]
    assert r["impossible"][0]["sources"] == 0 and r["impossible"][0]["acquirable"] == 0
    res = CliRunner().invoke(app, ["plan", "--target", "driving=0.5,nature=0.5", "--budget-sources", "2",
                                   "--purpose", "commercial", "--catalog", cat])
    assert res.exit_code == 0 and "impossible: nature" in res.output


def test_a_plan_by_hours_takes_no_source_of_unknown_hours(tmp_path, monkeypatch):
    # a: 36 s (0.01 h); b: no span, no duration. One hour wanted: only a can count towards it
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/a.mp4,CC-BY-4.0,road,0,36",
                                           "https://example.org/b.mp4,CC-BY-4.0,road,,"])
    res = CliRunner().invoke(app, ["plan", "--target", "driving=1", "--budget-hours", "1", "--purpose", "commercial",
                                   "--catalog", cat, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    urls = {x["source_id"]: x["url"] for x in Catalog(cat).query("SELECT source_id, url FROM sources")}
    assert [urls[x["source_id"]] for x in r["sources"]] == ["https://example.org/a.mp4"]
    assert r["planned"] == 0.01
    (p,) = r["impossible"]
    assert p["acquirable"] == 2 and p["without_hours"] == 1 and "1 of them have no known hours" in p["why"]
    # b alone: nothing has hours, so nothing to plan
    (tmp_path / "two").mkdir()
    cat2 = _catalog(tmp_path / "two", monkeypatch, ["https://example.org/b.mp4,CC-BY-4.0,road,,"])
    res = CliRunner().invoke(app, ["plan", "--target", "driving=1", "--budget-hours", "1", "--purpose", "commercial",
                                   "--catalog", cat2])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "driving (1 acquirable sources, 1 of them without known hours)" in text
    assert "--budget-sources" in text



def test_a_one_source_budget_goes_to_the_category_that_has_a_candidate(tmp_path, monkeypatch):
    # two equal shares of a budget of 1: rounding gives the unit to one of them; driving has no source, so
    # the unit goes to nature, which has one (before, driving got it and the plan failed as impossible)
    cat = _catalog(tmp_path, monkeypatch, ["https://example.org/f.mp4,CC-BY-4.0,forest,0,36"])
    res = CliRunner().invoke(app, ["plan", "--catalog", cat, "--purpose", "commercial",
                                   "--target", "driving=0.5,nature=0.5", "--budget-sources", "1", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert [s["category"] for s in r["sources"]] == ["nature"] and r["planned"] == 1
    by = {c["category"]: c for c in r["categories"]}
    assert (by["nature"]["planned"], by["driving"]["planned"]) == (1, 0)
    # both with a candidate: the unit goes as before, to the first of the tied shares, and the other is not
    # reported impossible (its whole-source share is 0)
    (tmp_path / "two").mkdir()
    cat2 = _catalog(tmp_path / "two", monkeypatch, ["https://example.org/r.mp4,CC-BY-4.0,road,0,36",
                                                    "https://example.org/f.mp4,CC-BY-4.0,forest,0,36"])
    r2 = json.loads(CliRunner().invoke(app, ["plan", "--catalog", cat2, "--purpose", "commercial", "--target",
                                             "driving=0.5,nature=0.5", "--budget-sources", "1", "--json"]).stdout)
    assert [s["category"] for s in r2["sources"]] == ["driving"] and r2["impossible"] == []


def test_keep_shares_shrinks_the_budget_to_what_the_short_category_allows(tmp_path, monkeypatch):
    # driving: 4 sources of 36 s (0.01 h each); nature: 1 of 72 s (0.02 h)
    rows = [f"https://example.org/r{n}.mp4,CC-BY-4.0,road,0,36" for n in range(4)]
    cat = _catalog(tmp_path, monkeypatch, [*rows, "https://example.org/f.mp4,CC-BY-4.0,forest,0,72"])

    def plan(*extra):
        res = CliRunner().invoke(app, ["plan", "--catalog", cat, "--purpose", "commercial", "--target",
                                       "driving=0.5,nature=0.5", "--json", *extra])
        assert res.exit_code == 0, res.output
        r = json.loads(res.stdout)
        return r, {c["category"]: c["planned"] for c in r["categories"]}

    # by default the short category's shortfall goes unplanned: 3 driving + 1 nature of a budget of 6
    r, got = plan("--budget-sources", "6")
    assert got == {"driving": 3, "nature": 1} and r["shrunk"] is None
    # keeping the shares: nature's one source allows a budget of 2, one of each
    r, got = plan("--budget-sources", "6", "--keep-shares")
    assert got == {"driving": 1, "nature": 1} and r["impossible"] == []
    assert (r["shrunk"]["budget"], r["shrunk"]["planned_budget"]) == (6, 2)
    assert [p["category"] for p in r["shrunk"]["limited_by"]] == ["nature"]
    # by hours: nature's 0.02 h allow 0.04 h in all, two driving sources against the one nature source
    r, got = plan("--budget-hours", "0.1", "--keep-shares")
    assert got == {"driving": 0.02, "nature": 0.02} and r["shrunk"]["planned_budget"] == 0.04
    text = CliRunner().invoke(app, ["plan", "--catalog", cat, "--purpose", "commercial", "--target",
                                    "driving=0.5,nature=0.5", "--budget-sources", "6", "--keep-shares"]).output
    assert "budget shrunk to keep the shares: 2 of 6 sources, limited by nature" in " ".join(text.split())
