"""The same pipeline gives the same catalog rows on the local and the Ray executor."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from clipfactory import ids, registry
from clipfactory.catalog import Catalog
from clipfactory.executors import get_executor
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.stage import StageContext
from clipfactory.storage import BlobStore

pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra: pip install 'clipfactory[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).parent / "stages" / "synth.py")
synth = sys.modules.get("cf_synth") or importlib.util.module_from_spec(_spec)
if "cf_synth" not in sys.modules:
    sys.modules["cf_synth"] = synth
    _spec.loader.exec_module(synth)

STAGES = ["media.probe", "media.analyse", "media.cut", "quality.filter"]


def _sources(store: BlobStore, tmp_path: Path) -> list[SourceRecord]:
    videos = [
        synth.make_video(
            tmp_path / "a.mp4", [("bars", 2), ("rings", 2), ("dark", 2)], keyint=25, scenecut=False
        ),
        synth.make_video(tmp_path / "b.mp4", [("checker", 2), ("flat", 2)], audio=None),
    ]
    bad = tmp_path / "not_media.mp4"
    bad.write_text("this is not a video\n")
    out = []
    for path in [*videos, bad]:
        uri, size = store.put_file(path)
        sha = uri.rsplit(":", 1)[1]
        out.append(
            SourceRecord(
                ids.content_source_id(sha),
                "owned",
                blob_uri=uri,
                content_sha256=sha,
                size_bytes=size,
                content_license="CC-BY-4.0",
                rights_holder="clipfactory tests",
            )
        )
    return out


def _run(executor_name: str, root: Path, sources: list[SourceRecord], store_root: Path) -> Catalog:
    cat = Catalog(root / "catalog.duckdb")
    ctx = StageContext(store_root=str(store_root), catalog_path=str(cat.path))
    ex = get_executor(executor_name, cat, workers=2, error_budget=1.0)
    try:
        current: list = sources
        run_id = ex.start_run("parity")
        for name in STAGES:
            if name == "media.cut":
                current = [r for r in current if isinstance(r, ClipRecord)]
            stage = registry.get(name)({}, ctx)
            current = ex.run([stage], current, run_id=run_id).outputs
        ex.finish_run(run_id, "finished")
    finally:
        if hasattr(ex, "shutdown"):
            ex.shutdown()
    return cat


def _rows(cat: Catalog) -> dict[str, list]:
    return {
        "sources": cat.query("SELECT * FROM sources ORDER BY source_id"),
        "clips": cat.query("SELECT * FROM clips ORDER BY clip_id"),
        "outcomes": cat.query(
            """SELECT stage, stage_version, config_hash, item_id, status, reason, error_kind, error, output_ids, attempt
               FROM stage_outcomes ORDER BY stage, item_id"""
        ),
    }


def test_local_and_ray_executors_write_the_same_rows(tmp_path):
    store_root = tmp_path / "store"
    sources = _sources(BlobStore(store_root), tmp_path)
    local = _rows(_run("local", tmp_path / "local", sources, store_root))
    ray_rows = _rows(_run("ray", tmp_path / "ray", sources, store_root))
    assert len(local["clips"]) >= 3
    assert any(o["status"] == "failed" for o in local["outcomes"])  # the non-media file is a failure row
    assert local["sources"] == ray_rows["sources"]
    assert local["clips"] == ray_rows["clips"]
    assert local["outcomes"] == ray_rows["outcomes"]
