"""After a takedown, the same file and a re-encoded copy are refused when they come back."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from fractions import Fraction
from pathlib import Path

from clipfactory.catalog import Catalog
from clipfactory.config import load_settings
from clipfactory.factory.pipeline import run_pipeline
from clipfactory.fingerprints.takedown import takedown

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).parent / "stages" / "synth.py")
synth = sys.modules.get("cf_synth") or importlib.util.module_from_spec(_spec)
if "cf_synth" not in sys.modules:
    sys.modules["cf_synth"] = synth
    _spec.loader.exec_module(synth)

SHOTS = [("bars", 3), ("rings", 3), ("checker", 3)]


def transcode_half(src: Path, dst: Path) -> Path:
    """Re-encode ``src`` with another codec and bit rate at half size (the footage stays the same)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("mpeg4", rate=vin.average_rate)
        vout.width, vout.height = vin.codec_context.width // 2, vin.codec_context.height // 2
        vout.pix_fmt = "yuv420p"
        vout.bit_rate = 300_000
        rate = Fraction(vin.average_rate)
        vout.codec_context.time_base = 1 / rate
        for i, frame in enumerate(inp.decode(vin)):
            small = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
            small.pts, small.time_base = i, 1 / rate
            out.mux(vout.encode(small))
        out.mux(vout.encode(None))
    return dst


def _settings(tmp_path: Path, inputs: list[Path]):
    return load_settings(
        overrides={
            "catalog": str(tmp_path / "catalog.duckdb"),
            "store": str(tmp_path / "store"),
            "purpose": "research",
            "inputs": [str(p) for p in inputs],
            "license": "CC-BY-4.0",
            "rights_holder": "clipfactory tests",
            "build": {"name": "guarded", "out": str(tmp_path / "builds")},
        }
    )


def _latest(cat: Catalog, stage: str) -> list[dict]:
    return cat.query(
        "SELECT item_id, status, reason FROM latest_outcomes WHERE stage = ? ORDER BY recorded_at", [stage]
    )


def test_taken_down_content_is_refused_when_it_comes_back(tmp_path, shared_data):
    first = tmp_path / "in1"
    first.mkdir()
    original = shutil.copy(shared_data / "media" / "bikes.mp4", first / "work.mp4")
    s = _settings(tmp_path, [first])
    summary = run_pipeline(s)
    assert summary["clips_kept"] >= 2
    cat = Catalog(s.catalog)
    (source_id,) = [r["source_id"] for r in cat.query("SELECT source_id FROM sources")]
    receipt = takedown(cat, s, source_id=source_id, reason="creator request")
    assert receipt["status"] != "already_done"
    assert cat.scalar("SELECT count(*) FROM sources") == 0

    # The same bytes under another path: refused by id before anything is copied into the store.
    again = tmp_path / "in2"
    again.mkdir()
    shutil.copy(original, again / "copy.mp4")
    # A re-encode of the same footage with another codec at half size: new bytes, refused by frame hashes.
    transcode_half(original, again / "reencoded.mp4")
    s2 = _settings(tmp_path, [again])
    summary = run_pipeline(s2)
    acquired = [r for r in _latest(cat, "acquire.local") if r["item_id"].split("@")[0] == source_id]
    assert acquired[-1]["status"] == "dropped" and acquired[-1]["reason"].startswith("takedown.tombstoned:")
    analysed = [r for r in _latest(cat, "media.analyse") if r["item_id"] != source_id]
    assert analysed and analysed[-1]["status"] == "dropped"
    assert analysed[-1]["reason"].startswith("takedown.tombstoned:")
    assert summary["clips_kept"] == 0
    assert cat.scalar("SELECT count(*) FROM clips") == 0


def test_unrelated_footage_is_not_refused(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    synth.make_video(d / "work.mp4", SHOTS, keyint=25, scenecut=False)
    s = _settings(tmp_path, [d])
    run_pipeline(s)
    cat = Catalog(s.catalog)
    (source_id,) = [r["source_id"] for r in cat.query("SELECT source_id FROM sources")]
    takedown(cat, s, source_id=source_id)
    other = tmp_path / "other"
    other.mkdir()
    synth.make_video(
        other / "other.mp4", [("noise", 3), ("dark", 3), ("bright", 3)], keyint=25, scenecut=False
    )
    summary = run_pipeline(_settings(tmp_path, [other]))
    assert not [r for r in _latest(cat, "media.analyse") if (r["reason"] or "").startswith("takedown.")]
    assert summary["clips_planned"] >= 1


def test_a_copy_analysed_before_the_takedown_does_not_ship_after_it(tmp_path, shared_data):
    """A re-encode that dedup dropped as a copy of the work is not analysed again when the run after the
    work's takedown resumes (so the analysis stage's frame-hash check never sees it), and nothing is its
    duplicate any more; the build's own check of its frame hashes refuses it."""
    d = tmp_path / "in"
    d.mkdir()
    work = shutil.copy(shared_data / "media" / "bikes.mp4", d / "a_work.mp4")
    transcode_half(Path(work), d / "b_copy.mp4")
    s = _settings(tmp_path, [d])
    first = run_pipeline(s)
    cat = Catalog(s.catalog)
    assert [r for r in _latest(cat, "dedup.near") if r["status"] == "dropped"]
    shipped = {r["source_id"] for r in cat.query(
        "SELECT DISTINCT c.source_id FROM build_members m JOIN clips c USING (clip_id) WHERE m.build_id = ?",
        [first["build"]["build_id"]])}
    assert len(shipped) == 1 and cat.scalar("SELECT count(*) FROM sources") == 2  # one copy ships
    (taken,) = shipped
    takedown(cat, s, source_id=taken, reason="creator request")
    assert cat.scalar("SELECT count(*) FROM sources") == 1  # the other copy is still in the catalog

    again = run_pipeline(s)
    assert again["resumed"]["media.analyse"] >= 1  # the copy was not analysed again
    assert again["build"]["n_clips"] in (0, None)  # and does not ship
    refused = [r for r in _latest(cat, "build.export") if (r["reason"] or "").startswith("takedown.tombstoned:")]
    assert refused, "the copy's clips are refused at the build, naming the tombstone"
