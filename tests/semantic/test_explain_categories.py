"""`clipfactory explain SOURCE` shows the source's content category and its scores, as
`clipfactory categories --source ID --json` gives them; kept scores (`category_scores`, written by
`semantic index`) give the same answer as the vectors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

from .conftest import needs_model

MAP = "url=video_url,license=licence,title=name,label=lab"


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _cli(*args: str) -> dict | str:
    r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout) if "--json" in args else r.output


def _ingest(tmp_path, rows: list[str]) -> str:
    cat = str(tmp_path / "cat.duckdb")
    (tmp_path / "m.csv").write_text("\n".join(["video_url,licence,name,lab", *rows]) + "\n")
    _cli("ingest", str(tmp_path / "m.csv"), "--dataset", "stock", "--catalog", cat, "--map", MAP)
    return cat


def _source_id(cat: str, url: str) -> str:
    return Catalog(cat).query("SELECT source_id FROM sources WHERE url = ?", [url])[0]["source_id"]


def test_explain_shows_the_category_a_mapped_manifest_label_gives(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPFACTORY_TAXONOMY", raising=False)
    url = "https://example.org/v/aerial.mp4"
    cat = _ingest(tmp_path, [f"{url},CC-BY-4.0,Untitled clip,Drone"])
    sid = _source_id(cat, url)
    # the packaged taxonomy maps the manifest label "Drone" to drone-aerial ([labels] of taxonomy.toml)
    sec = _cli("explain", sid, "--catalog", cat, "--json")["sections"]["semantic.categories"]
    assert (sec["category"], sec["how"], sec["confidence"]) == ("drone-aerial", "label", 1.0)
    assert sec == {k: v for k, v in _cli("categories", "--source", sid, "--catalog", cat, "--json").items()
                   if k != "source_id"}
    assert "content category: drone-aerial" in _cli("explain", sid, "--catalog", cat)


@needs_model
def test_explain_shows_zero_shot_scores_from_kept_scores_and_from_vectors_alike(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPFACTORY_TAXONOMY", raising=False)
    road = "https://example.org/v/road.mp4"
    cat = _ingest(tmp_path, [
        f"{road},CC-BY-4.0,Dashcam video of a man driving a car down the highway,",
        "https://example.org/v/other.mp4,CC-BY-4.0,Quarterly tax filing deadlines explained in a spreadsheet,",
    ])
    summary = _cli("semantic", "index", "--catalog", cat, "--json")
    assert summary["category_scores"] == 2  # both text vectors scored and kept
    sid = _source_id(cat, road)
    from clipfactory.semantic import categories as cmod

    def no_vectors(*a, **k):
        raise AssertionError("the kept scores were not used: the prompts were encoded")

    with monkeypatch.context() as m:  # with kept scores the prompts are not encoded
        m.setattr(cmod, "prompt_centroids", no_vectors)
        sec = _cli("explain", sid, "--catalog", cat, "--json")["sections"]["semantic.categories"]
    assert sec["category"] == "driving" and sec["how"] == "zero-shot"
    assert max(sec["scores"], key=sec["scores"].get) == "driving"
    assert "content category: driving" in _cli("explain", sid, "--catalog", cat)
    # without the kept scores the vectors give the same answer
    with Catalog(cat).write() as con:
        assert con.execute("SELECT count(*) FROM category_scores").fetchall()[0][0] == 2
        con.execute("DELETE FROM category_scores")
    again = _cli("explain", sid, "--catalog", cat, "--json")["sections"]["semantic.categories"]
    assert again["category"] == "driving" and again["scores"].keys() == sec["scores"].keys()
    assert again["scores"] == pytest.approx(sec["scores"], abs=1e-4)
    # a second index run scores what is missing, and only that
    assert _cli("semantic", "index", "--catalog", cat, "--json")["category_scores"] == 2
    assert _cli("semantic", "index", "--catalog", cat, "--json")["category_scores"] == 0
