"""plan: sources already held come last, and near-duplicates (dedup.near drops, a second copy of the same
content hash) are never planned. Categories from manifest labels mapped in a taxonomy of the test."""

from __future__ import annotations

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.catalog.outcomes import outcome_row, write_outcomes
from clipfactory.cli.app import app
from clipfactory.semantic.plan import plan_mix

TAX = '[categories.driving]\nprompts = ["a car on a road"]\n[categories.nature]\nprompts = ["a forest"]\n' \
      '[labels]\n"road" = "driving"\n"forest" = "nature"\n'


def test_plan_skips_near_duplicates_and_takes_held_sources_last(tmp_path, monkeypatch):
    (tmp_path / "t.toml").write_text(TAX)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    cat = str(tmp_path / "c.duckdb")
    rows = ["video_url,licence,lab"] + [f"https://example.org/{n}.mp4,CC-BY-4.0,road" for n in "abcde"]
    rows += [f"https://example.org/f{n}.mp4,CC-BY-4.0,forest" for n in "12"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    r = CliRunner()
    for args in (["ingest", str(tmp_path / "m.csv"), "--dataset", "d", "--map", "url=video_url,license=licence,label=lab"],
                 ["policy", "check", "--purpose", "commercial"]):
        res = r.invoke(app, [*args, "--catalog", cat])
        assert res.exit_code == 0, res.output
    c = Catalog(cat)
    sid = {x["url"].rsplit("/", 1)[1][:-4]: x["source_id"] for x in c.query("SELECT source_id, url FROM sources")}
    with c.write() as con:
        con.execute("UPDATE sources SET blob_uri = 'blob://held' WHERE source_id = ?", [sid["a"]])  # held
        for k in "bc":  # b and c: the same content
            con.execute("UPDATE sources SET content_sha256 = ? WHERE source_id = ?", ["sha256:" + "1" * 64, sid[k]])
        write_outcomes(con, [outcome_row("r1", "dedup.near", 1, "h", sid["d"], "dropped",
                                         reason=f"dedup.near_duplicate_of:{sid['e']}")])
    # by hand: the driving candidates are a (held), the first of b and c by source id, and e (d is a
    # near-duplicate); 3 wanted take all three, 2 wanted leave out the held a
    first_of_bc = min(sid["b"], sid["c"])
    got = plan_mix(c, {"driving": 0.6, "nature": 0.4}, purpose="commercial", budget_sources=5)
    assert {x["source_id"] for x in got["sources"] if x["category"] == "driving"} == {sid["a"], first_of_bc, sid["e"]}
    got2 = plan_mix(c, {"driving": 0.5, "nature": 0.5}, purpose="commercial", budget_sources=4)
    assert {x["source_id"] for x in got2["sources"] if x["category"] == "driving"} == {first_of_bc, sid["e"]}
