"""The fingerprint features on a catalog and build made by the real pipeline (``clipfactory run``)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from media_synth import transform

from clipfactory.catalog import Catalog
from clipfactory.config import load_settings
from clipfactory.factory import pipeline
from clipfactory.fingerprints.dedup import find_near_duplicates
from clipfactory.fingerprints.lookup import lookup
from clipfactory.fingerprints.takedown import takedown
from clipfactory.fingerprints.tombstones import is_tombstoned
from clipfactory.fingerprints.verify import verify_build


@pytest.fixture(scope="module")
def piped(tmp_path_factory, synth_dir):
    d = tmp_path_factory.mktemp("pipe")
    copy = transform(synth_dir / "B.mp4", d / "b_copy.mp4", codec="mpeg4", bit_rate=500_000, scale=0.5)
    s = load_settings(
        overrides={
            "catalog": str(d / "cat.duckdb"),
            "store": str(d / "store"),
            "inputs": [str(synth_dir / "A.mp4"), str(synth_dir / "B.mp4"), str(copy)],
            "license": "CC-BY-4.0",
            "rights_holder": "Test Holder",
        },
        # the synthetic footage is smooth and cut into short shots: keep every clip the cutter makes
        sets=[
            f"build.out={d / 'builds'}",
            "quality.filter.min_sharpness=0",
            "quality.filter.min_duration_s=0.5",
        ],
    )
    summary = pipeline.run_pipeline(s)
    return s, Catalog(s.catalog), summary, d


def test_lookup_finds_clips_in_the_real_build(piped, synth_dir, tmp_path):
    s, cat, summary, _ = piped
    build_id = summary["build"]["build_id"]
    q = transform(synth_dir / "A.mp4", tmp_path / "q.mp4", start_s=2.0, end_s=7.0, scale=0.5)
    res = lookup(cat, q, settings=s)
    assert res["status"] == "matched"
    top = res["matches"][0]
    assert top["content_license"] == "CC-BY-4.0"
    shipped = [b for c in top["clips"] for b in c["builds"]]
    assert shipped and shipped[0]["build_id"] == build_id
    assert shipped[0]["included_under"]["content_license"] == "CC-BY-4.0"
    assert res["builds"][0]["build_id"] == build_id
    # the ranges it names lie within both files (a run ends one sample step after its last matched frame)
    src_ms = cat.scalar("SELECT duration_ms FROM sources WHERE source_id = ?", [top["source_id"]])
    with av.open(str(q)) as c:
        q_ms = int(c.duration / 1000)
    for seg in top["segments"]:
        assert 0 <= seg["query_start_ms"] < seg["query_end_ms"] <= q_ms, (seg, q_ms)
        assert 0 <= seg["source_start_ms"] < seg["source_end_ms"] <= src_ms, (seg, src_ms)


def test_dedup_finds_the_reencoded_input(piped):
    s, cat, _, _ = piped
    out = find_near_duplicates(cat, s.store, settings=s)
    dropped = [x["source_id"] for g in out["groups"] for x in g["dropped"]]
    by_file = {Path(r["origin_uri"]).name: r["source_id"] for r in cat.query("SELECT * FROM sources")}
    # The half-size re-encode of B loses to B itself; A has no copy.
    assert dropped and out["dropped"] == len(dropped)
    assert set(dropped) == {by_file["b_copy.mp4"]}
    assert {g["kept_source"] for g in out["groups"]} == {by_file["B.mp4"]}


def test_takedown_and_verify_on_the_real_build(piped, synth_dir):
    s, cat, summary, d = piped
    sid = cat.query("SELECT source_id FROM sources WHERE origin_uri LIKE '%A.mp4'")[0]["source_id"]
    sha = cat.scalar("SELECT content_sha256 FROM sources WHERE source_id = ?", [sid])
    receipt = takedown(cat, s, source_id=sid, reason="integration")
    assert receipt["status"] == "done"
    new = receipt["builds"][0]["new_build_id"]
    manifest = json.loads((Path(receipt["builds"][0]["new_out_dir"]) / "build.json").read_text())
    assert manifest["supersedes"] == summary["build"]["build_id"]
    v = verify_build(cat, new)
    assert v["ok"] and v["members_scanned"] > 0
    assert is_tombstoned(cat, sha256=sha)
    assert lookup(cat, synth_dir / "A.mp4", settings=s)["status"] == "no_match"
