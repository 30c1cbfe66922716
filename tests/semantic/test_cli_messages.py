"""What `categories` and `plan` say when something is missing: a catalog not indexed yet, an unknown
dataset; why a source got its category; a blob missing from the store names the store and the blob."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app
from clipfactory.errors import NotFoundError

MAP = "url=video_url,license=licence,title=name,label=lab"


def _ingest(tmp_path) -> str:
    cat = str(tmp_path / "cat.duckdb")
    (tmp_path / "m.csv").write_text(
        "video_url,licence,name,lab\n"
        "https://example.org/a.mp4,CC-BY-4.0,a man driving a car,\n"
        "https://example.org/b.mp4,CC-BY-4.0,a forest in autumn,\n"
        "https://example.org/c.mp4,CC-BY-4.0,Untitled,Drone\n"
    )
    r = CliRunner().invoke(app, ["ingest", str(tmp_path / "m.csv"), "--dataset", "stock", "--catalog", cat, "--map", MAP])
    assert r.exit_code == 0, r.output
    return cat


def test_categories_before_semantic_index_says_so_and_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPFACTORY_TAXONOMY", raising=False)
    cat = _ingest(tmp_path)
    r = CliRunner().invoke(app, ["categories", "--catalog", cat, "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    # two sources with text but no vector; the third's label "Drone" maps to drone-aerial
    assert got["not_indexed"] == 2 and got["without_text"] == 0
    assert "clipfactory semantic index" in got["fix"]
    assert {c["category"]: c["sources"] for c in got["categories"]}["drone-aerial"] == 1
    text = CliRunner().invoke(app, ["categories", "--catalog", cat])
    assert text.exit_code == 0 and "2 of 3 sources are not indexed" in text.output
    assert "clipfactory semantic index" in text.output


def test_an_unknown_dataset_is_an_error_naming_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPFACTORY_TAXONOMY", raising=False)
    cat = _ingest(tmp_path)
    r = CliRunner().invoke(app, ["categories", "--dataset", "kinetics-400", "--catalog", cat])
    assert r.exit_code != 0
    assert "kinetics-400" in r.output and "use one of: stock" in r.output
    assert CliRunner().invoke(app, ["policy", "check", "--purpose", "commercial", "--catalog", cat]).exit_code == 0
    p = CliRunner().invoke(app, ["plan", "--target", "driving=1", "--budget-sources", "1", "--purpose", "commercial",
                                 "--dataset", "stok", "--catalog", cat])
    assert p.exit_code != 0 and "'stok'" in p.output and "use one of: stock" in p.output


def test_the_why_of_a_zero_shot_category_gives_its_scores():
    from clipfactory.semantic.categories import _zero_shot_why

    tax = {"other": "other", "threshold": 0.25}
    assert _zero_shot_why("driving", {"driving": 0.61, "nature": 0.4, "other": 0.3}, tax) == \
        "(nearest prompts: driving 0.610, then nature 0.400; nearest anchor of other 0.300; threshold 0.25)"
    assert _zero_shot_why("other", {"driving": 0.2, "nature": 0.1}, tax) == \
        "(best category driving 0.200 is below the threshold 0.25)"
    assert _zero_shot_why("other", {"driving": 0.4, "nature": 0.1, "other": 0.45}, tax) == \
        "(an anchor of other is nearer (0.450) than the best category, driving 0.400)"


def test_a_blob_missing_from_the_store_names_the_store_and_the_blob(tmp_path):
    from clipfactory.storage import BlobStore

    store = BlobStore(tmp_path / "store")
    uri = "blob:sha256:" + "ab" * 32
    with pytest.raises(NotFoundError) as e:
        store.path_of(uri)
    msg = str(e.value)
    assert str(tmp_path / "store") in msg and "ab" * 32 in msg and uri in msg
