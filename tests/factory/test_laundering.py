"""Relabelling launders nothing: a re-encoded copy of non-commercial footage that claims CC BY never reaches
a commercial build, in one run or after `clipfactory dedup`, and `explain` shows why. Real media."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app
from clipfactory.config import Settings
from clipfactory.factory import pipeline
from clipfactory.ids import sha256_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from media_synth import transform  # noqa: E402


def _sidecar(path: Path, license: str, holder: str, title: str) -> None:
    Path(str(path) + ".json").write_text(
        json.dumps({"license": license, "rights_holder": holder, "title": title})
    )


@pytest.fixture(scope="module")
def footage(tmp_path_factory, shared_data) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("launder")
    nc, cup = d / "in" / "bikes.mp4", d / "in" / "cup.mp4"
    nc.parent.mkdir()
    shutil.copy(shared_data / "media" / "bikes.mp4", nc)
    _sidecar(nc, "CC-BY-NC-4.0", "A Cyclist", "Bikes")
    shutil.copy(shared_data / "media" / "cup.mp4", cup)
    _sidecar(cup, "CC-BY-4.0", "Some Maker", "Cup")
    # the same footage, re-encoded at half size under another name and a permissive label
    copy = transform(nc, d / "in" / "street_scene.mp4", codec="mpeg4", bit_rate=600_000, scale=0.5)
    _sidecar(copy, "CC-BY-4.0", "Reuploader", "Street scene")
    return {"root": d, "nc": nc, "cup": cup, "copy": copy}


def _settings(tmp: Path, inputs: list[Path], purpose: str, name: str) -> Settings:
    return Settings(
        catalog=str(tmp / "cat.duckdb"),
        store=str(tmp / "store"),
        inputs=[str(p) for p in inputs],
        purpose=purpose,
        build={"name": name, "out": str(tmp / "builds"), "shard_size": 4},
        stages={"quality.filter": {"min_duration_s": 0.5}},
    )


def _shipped_sources(out_dir: str) -> set[str]:
    return {r["source_id"] for r in pq.read_table(Path(out_dir) / "index.parquet").to_pylist()}


def _source_id(path: Path) -> str:
    return "sha256:" + sha256_file(path)


def test_a_commercial_build_refuses_the_relabelled_copy_and_names_it(footage, tmp_path):
    s = _settings(tmp_path, [footage["nc"], footage["cup"], footage["copy"]], "commercial", "com")
    summary = pipeline.run_pipeline(s)
    assert summary["build"]["status"] == "complete", summary
    shipped = _shipped_sources(summary["build"]["out_dir"])
    nc, copy, cup = _source_id(footage["nc"]), _source_id(footage["copy"]), _source_id(footage["cup"])
    assert cup in shipped
    assert nc not in shipped and copy not in shipped
    cat = Catalog(s.catalog)
    rows = cat.query(
        """SELECT o.item_id, o.reason, o.detail FROM latest_outcomes o JOIN clips c ON c.clip_id = o.item_id
           WHERE c.source_id = ? AND o.stage = 'dedup.near'""",
        [copy],
    )
    assert rows and all(r["reason"].startswith("dedup.restricted_copy:") for r in rows)
    nc_clips = {r["clip_id"] for r in cat.query("SELECT clip_id FROM clips WHERE source_id = ?", [nc])}
    for r in rows:
        assert r["reason"].split(":", 1)[1] in nc_clips
    # explain on the copy shows the chain down to the NC terms
    res = CliRunner().invoke(app, ["explain", copy, "--catalog", s.catalog, "--purpose", "commercial", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    section = doc["sections"]["fingerprints.dedup"]
    assert section["restricted_copies"] == len(rows)
    chain = section["dropped_clips"][0]["chain"]
    assert [c["license"] for c in chain] == ["CC-BY-4.0", "CC-BY-NC-4.0"]
    assert chain[1]["source_id"] == nc
    # a research build of the same catalog may use the NC footage: one copy of it ships
    r = pipeline.run_pipeline(s, purpose="research", build_name="res")
    research = _shipped_sources(r["build"]["out_dir"])
    assert cup in research and len({nc, copy} & research) == 1


def test_dedup_run_first_does_not_let_the_copy_through(footage, tmp_path):
    # research first: the catalog holds both copies' fingerprints, and a global dedup picks one of them
    s = _settings(tmp_path, [footage["nc"], footage["cup"], footage["copy"]], "research", "res")
    pipeline.run_pipeline(s)
    res = CliRunner().invoke(app, ["dedup", "--catalog", s.catalog, "--store", s.store, "--json"])
    assert res.exit_code == 0, res.output
    # then a commercial build of the CC BY sources only (the NC original is not among its inputs)
    s2 = _settings(tmp_path, [footage["cup"], footage["copy"]], "commercial", "com")
    summary = pipeline.run_pipeline(s2)
    shipped = _shipped_sources(summary["build"]["out_dir"])
    assert _source_id(footage["cup"]) in shipped
    assert _source_id(footage["copy"]) not in shipped
    dropped = summary["stages"]["dedup.near"]["reasons"]
    assert any(k.startswith("dedup.restricted_copy:") for k in dropped), summary["stages"]["dedup.near"]
