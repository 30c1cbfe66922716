"""A lookup finds the catalog's blob store, and refuses rather than answer "no match" when it cannot search
every fingerprint of the catalog."""

from __future__ import annotations

import json

import pytest
from media_synth import transform
from typer.testing import CliRunner

from clipfactory.catalog.meta import record_store, recorded_store
from clipfactory.cli.app import app
from clipfactory.config import load_settings
from clipfactory.errors import NotFoundError
from clipfactory.fingerprints.index import index_catalog
from clipfactory.fingerprints.lookup import lookup
from clipfactory.pipelines import Run
from clipfactory.storage import BlobStore

from .conftest import add_source


@pytest.fixture(scope="module")
def queries(tmp_path_factory, synth_dir):
    """Re-encoded sub-clips of A, B and C: never the catalog's own bytes (those match by sha256 alone)."""
    d = tmp_path_factory.mktemp("queries")
    for name in "ABC":
        transform(synth_dir / f"{name}.mp4", d / f"{name}.mp4", scale=0.75, start_s=2.0, end_s=8.0)
    return d


@pytest.fixture
def built(catalog, tmp_path, synth_dir, queries, monkeypatch):
    """Two analysed sources whose fingerprints are in the store but not loaded yet, and a catalog whose
    store was recorded by a run; the working folder holds no store of its own."""
    store = BlobStore(tmp_path / "store")
    a, _ = add_source(catalog, store, synth_dir / "A.mp4", cut_clips=False)
    b, _ = add_source(catalog, store, synth_dir / "B.mp4", cut_clips=False)
    settings = load_settings(overrides={"catalog": str(catalog.path), "store": str(store.root)})
    with Run(settings, command="test", catalog=catalog):
        pass
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for var in ("CLIPFACTORY_STORE", "CLIPFACTORY_CATALOG", "CLIPFACTORY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return {"store": store, "a": a, "b": b, "synth": synth_dir, "q": queries, "tmp": tmp_path}


def test_a_run_records_its_store(catalog, built):
    assert recorded_store(catalog) == str(built["store"].root.absolute())


def test_lookup_without_store_uses_the_recorded_one(catalog, built):
    res = CliRunner().invoke(
        app, ["lookup", str(built["q"] / "B.mp4"), "--catalog", str(catalog.path), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "matched"
    assert [m["source_id"] for m in data["matches"]] == [built["b"].source_id]


def test_lookup_with_the_wrong_store_refuses_and_names_the_right_one(catalog, built):
    wrong = built["tmp"] / "other-store"
    wrong.mkdir()
    res = CliRunner().invoke(
        app,
        ["lookup", str(built["q"] / "B.mp4"), "--catalog", str(catalog.path), "--store", str(wrong)],
    )
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "no_match" not in text and "no catalog footage matches" not in text
    assert str(wrong) in text
    assert f"--store {built['store'].root.absolute()}" in text
    # nothing was loaded from the wrong store: with the right one the same lookup matches
    assert catalog.scalar("SELECT count(*) FROM frame_hashes") == 0
    assert lookup(catalog, built["q"] / "B.mp4", store=built["store"])["status"] == "matched"


def test_lookup_in_a_store_that_does_not_exist_refuses(catalog, built):
    with pytest.raises(NotFoundError) as err:
        lookup(catalog, built["q"] / "A.mp4", store=built["tmp"] / "no-such-store")
    assert "does not exist" in str(err.value) and built["a"].source_id in str(err.value)
    assert not (built["tmp"] / "no-such-store").exists()


def test_a_stale_index_is_loaded_or_refused(catalog, built):
    store = built["store"]
    index_catalog(catalog, store)
    c, _ = add_source(catalog, store, built["synth"] / "C.mp4", cut_clips=False)
    # the persisted index predates C: without loading, the lookup cannot know and says so
    with pytest.raises(NotFoundError) as err:
        lookup(catalog, built["q"] / "C.mp4", store=store, refresh=False)
    assert "stale" in str(err.value) and c.source_id in str(err.value)
    res = lookup(catalog, built["q"] / "C.mp4", store=store)
    assert res["status"] == "matched" and res["matches"][0]["source_id"] == c.source_id


def test_unrelated_footage_still_answers_no_match(catalog, built):
    res = lookup(catalog, built["synth"] / "D.mp4", store=built["store"])
    assert res["status"] == "no_match" and res["index"]["sources"] == 2


def test_lookup_needs_an_existing_catalog(tmp_path, queries):
    missing = tmp_path / "nope.duckdb"
    res = CliRunner().invoke(app, ["lookup", str(queries / "A.mp4"), "--catalog", str(missing)])
    assert res.exit_code == 1 and "--catalog" in res.output
    assert not missing.exists()


def test_record_store_on_a_connection(catalog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recorded_store(catalog) is None
    with catalog.write() as con:
        assert record_store(con, "relative/store") == str(tmp_path / "relative" / "store")
    assert recorded_store(catalog) == str(tmp_path / "relative" / "store")
    with catalog.write() as con:
        record_store(con, tmp_path / "s")
        assert recorded_store(con) == str(tmp_path / "s")
    assert recorded_store(catalog) == str(tmp_path / "s")
    record_store(catalog, "s3://bucket/store")
    assert recorded_store(catalog) == "s3://bucket/store"
