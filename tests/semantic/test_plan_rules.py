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


def _decided_catalog(tmp_path, monkeypatch, taxonomy: str, rows: list[str]) -> Catalog:
    """A catalog of the manifest ``rows`` (url, licence, label) ingested as dataset ``d`` and decided for
    commercial use, with ``taxonomy`` as the categories."""
    (tmp_path / "t.toml").write_text(taxonomy)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    cat = str(tmp_path / "c.duckdb")
    (tmp_path / "m.csv").write_text("\n".join(["video_url,licence,lab", *rows]) + "\n")
    r = CliRunner()
    for args in (["ingest", str(tmp_path / "m.csv"), "--dataset", "d", "--map", "url=video_url,license=licence,label=lab"],
                 ["policy", "check", "--purpose", "commercial"]):
        res = r.invoke(app, [*args, "--catalog", cat])
        assert res.exit_code == 0, res.output
    return Catalog(cat)


def test_plan_skips_near_duplicates_and_takes_held_sources_last(tmp_path, monkeypatch):
    rows = [f"https://example.org/{n}.mp4,CC-BY-4.0,road" for n in "abcde"]
    rows += [f"https://example.org/f{n}.mp4,CC-BY-4.0,forest" for n in "12"]
    c = _decided_catalog(tmp_path, monkeypatch, TAX, rows)
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
    # of the first plan's 5 sources, the held a (driving) is already in the store: 1 of 5 = 20%, nature none
    by = {x["category"]: x for x in got["categories"]}
    assert (by["driving"]["planned_held"], by["driving"]["held_share"]) == (1, 0.2)
    assert (by["nature"]["planned_held"], by["nature"]["held_share"]) == (0, 0.0)
    held_lines = [line for line in got["chart"].splitlines() if line.split()[:1] == ["held"]]
    assert [line.split()[-1] for line in held_lines] == ["20%", "0%"] and held_lines[0].count("+") == 8
    assert {x["category"]: x["planned_held"] for x in got2["categories"]} == {"driving": 0, "nature": 0}


def test_spread_order_is_round_robin_over_labels_missing_sources_first():
    import numpy as np

    from clipfactory.semantic.plan import spread_order

    # label A: rows 0, 1, 2 (0.9, 0.8, 0.7) and a held row 6 (0.99); B: rows 3, 4 (0.6, 0.5); C: row 5 (0.95)
    rows = np.arange(7)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.99])
    held = np.array([0, 0, 0, 0, 0, 0, 1], bool)
    group = np.array([0, 0, 0, 1, 1, 2, 0])
    order, rank = spread_order(rows, score, held, group)
    # by hand: round 1 takes each label's best, labels by their best (C 0.95, A 0.9, B 0.6); round 2 A, B;
    # round 3 A; the held source last, whatever its score
    assert order.tolist() == [5, 0, 3, 1, 4, 2, 6]
    assert rank.tolist() == [0, 0, 0, 1, 1, 2, 0]


def test_one_label_does_not_fill_a_category(tmp_path, monkeypatch):
    tax = ('[categories.driving]\nprompts = ["a car on a road"]\n[categories.nature]\nprompts = ["a forest"]\n'
           '[labels]\n"road" = "driving"\n"highway" = "driving"\n"street" = "driving"\n"forest" = "nature"\n')
    rows = [f"https://example.org/r{n}.mp4,CC-BY-4.0,road" for n in range(6)]
    rows += ["https://example.org/h0.mp4,CC-BY-4.0,highway"]
    rows += [f"https://example.org/s{n}.mp4,CC-BY-4.0,street" for n in range(2)]
    rows += [f"https://example.org/f{n}.mp4,CC-BY-4.0,forest" for n in range(4)]
    c = _decided_catalog(tmp_path, monkeypatch, tax, rows)
    label = {x["source_id"]: x["label"] for x in c.query("SELECT source_id, label FROM memberships")}
    got = plan_mix(c, {"driving": 0.6, "nature": 0.4}, purpose="commercial", budget_sources=10)
    picks = [x for x in got["sources"] if x["category"] == "driving"]
    per = {}
    for x in picks:
        per[label[x["source_id"]]] = per.get(label[x["source_id"]], 0) + 1
    # 6 driving picks over road (6 sources), highway (1) and street (2), round robin: highway 1, street 2,
    # road the other 3 (not 6 of road, which a plan by score alone could take)
    assert per == {"road": 3, "highway": 1, "street": 2}
    assert {x["category"]: x["planned_share"] for x in got["categories"]} == {"driving": 0.6, "nature": 0.4}
    # each pick says why: its label, its rank among that label's picks, missing from the store
    w = {x["why"] for x in picks}
    assert "its manifest label maps to driving in the taxonomy file; missing from the store; pick 1 of d:highway" in w
    assert any(x.endswith("pick 3 of d:road") for x in w) and not any("pick 4" in x for x in w)
