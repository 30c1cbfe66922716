"""A build made without a config file names its folder relative to where the run was; a takedown (or any
later command) may run in another folder. The catalog records the folder absolute, so the takedown from
elsewhere rewrites the shipped shards; a catalog that still names a relative folder that is not there is
refused before anything changes, never reported as done. And the same media built in two folders is the
same build (content hash)."""

from __future__ import annotations

import io
import sys
import tarfile

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

synth = sys.modules["cf_synth"]  # tests/factory/conftest.py


def _build_in(a, monkeypatch):
    media = a / "media"
    media.mkdir(parents=True)
    synth.make_video(media / "one.mp4", [("bars", 3), ("rings", 3)], size=(160, 96), keyint=25, scenecut=False)
    synth.make_video(media / "two.mp4", [("checker", 3), ("flat", 3)], size=(160, 96), keyint=25, scenecut=False)
    monkeypatch.chdir(a)
    r = CliRunner().invoke(
        app, ["add", str(media / "one.mp4"), str(media / "two.mp4"), "--license", "CC-BY-4.0", "--rights-holder", "Me"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["run", "--dataset", "owned", "--purpose", "commercial"])
    assert r.exit_code == 0, r.output
    cat = Catalog(a / "clipfactory.duckdb")
    one = cat.scalar("SELECT source_id FROM sources WHERE origin_uri LIKE '%one.mp4'")
    return cat, one


def _takedown(a, source_id):
    """``clipfactory takedown`` of ``source_id`` from the current folder, on the catalog and store in ``a``."""
    return CliRunner().invoke(
        app,
        ["takedown", source_id, "--catalog", str(a / "clipfactory.duckdb"), "--store", str(a / "clipfactory-store"),
         "--reason", "test", "--yes"],
    )


def _members(folder):
    names = []
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(fileobj=io.BytesIO(shard.read_bytes())) as t:
            names += [m.name for m in t.getmembers()]
    return names


def test_a_takedown_from_another_folder_rewrites_the_build_where_it_is(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    cat, one = _build_in(a, monkeypatch)
    [v1] = cat.query("SELECT build_id, out_dir FROM builds")
    assert v1["out_dir"] == str(a / "builds" / "build" / "v1")  # absolute, where the run wrote it
    clips_of_one = {r["clip_id"] for r in cat.query("SELECT clip_id FROM clips WHERE source_id = ?", [one])}
    assert clips_of_one and any(k.split(".")[0] in clips_of_one for k in _members(a / "builds/build/v1"))
    b.mkdir()
    monkeypatch.chdir(b)
    r = _takedown(a, one)
    assert r.exit_code == 0, r.output
    assert not (b / "builds").exists(), "nothing is written where the takedown ran"
    v2 = a / "builds" / "build" / "v2"
    left = _members(v2)
    assert left and not any(k.split(".")[0] in clips_of_one for k in left)
    assert not any(k.split(".")[0] in clips_of_one for k in _members(a / "builds/build/v1"))


def test_a_relative_build_folder_that_is_not_here_is_refused_before_anything_changes(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    cat, one = _build_in(a, monkeypatch)
    with cat.write() as con:  # as an older clipfactory recorded it: relative to the run's folder
        con.execute("UPDATE builds SET out_dir = 'builds/build/v1'")
    before = _members(a / "builds/build/v1")
    b.mkdir()
    monkeypatch.chdir(b)
    r = _takedown(a, one)
    assert r.exit_code == 1, r.output
    err = " ".join(r.stderr.split())
    assert "the files of build build-v1 are not at builds/build/v1" in err
    assert "run the takedown from the folder the build was made in" in err
    assert cat.scalar("SELECT count(*) FROM builds") == 1
    assert cat.scalar("SELECT count(*) FROM sources WHERE source_id = ?", [one]) == 1
    assert _members(a / "builds/build/v1") == before and not (b / "builds").exists()


def test_the_same_media_in_two_folders_gives_the_same_build(tmp_path):
    """A build's content hash is about its content: the same files added from two folders (two machines,
    two checkouts) give the same hash; the manifest of owned files names them relative to their folder."""
    from clipfactory.config import Settings
    from clipfactory.factory import pipeline

    hashes = []
    for side in ("left", "right"):
        root = tmp_path / side / "deep" if side == "right" else tmp_path / side
        media = root / "media"
        media.mkdir(parents=True)
        synth.make_video(media / "one.mp4", [("bars", 3), ("rings", 3)], size=(160, 96), keyint=25, scenecut=False)
        s = Settings(
            catalog=str(root / "cat.duckdb"), store=str(root / "store"), inputs=[str(media)], license="CC-BY-4.0",
            rights_holder="Me", purpose="commercial", build={"name": "t", "out": str(root / "builds")},
            stages={"media.analyse": {"detect_text": False}, "signals.visual": {"nsfw": False, "faces": False}},
        )
        pipeline.run_pipeline(s)
        [row] = Catalog(root / "cat.duckdb").query("SELECT config->>'content_hash' AS content_hash, n_clips FROM builds")
        assert row["n_clips"] >= 1
        hashes.append(row["content_hash"])
    assert hashes[0] == hashes[1]
