"""The whole factory, fetch included, gives the same build on the local and the Ray executor (real raylets)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from clipfactory import ids
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord

pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra: pip install 'clipfactory[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.shared_data]

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"

if "cf_acquire_server" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("cf_acquire_server", Path(__file__).parent / "acquire" / "server.py")
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["cf_acquire_server"] = _mod
    _spec.loader.exec_module(_mod)
TestServer = sys.modules["cf_acquire_server"].TestServer


def _catalog(settings, srv) -> None:
    """Two licensed web sources listed by a dataset with spans and captions, and one the purpose refuses."""
    rows = [
        ("bunny", "bbb_5s.mp4", "CC-BY-4.0", [(500, 2500, "a rabbit wakes up"), (3000, 5000, "the meadow")]),
        ("cup", "cup.mp4", "CC0-1.0", [(1000, 4000, "hands turn a cup")]),
        ("bikes", "bikes.mp4", "CC-BY-NC-4.0", [(0, 4000, "bikes")]),
    ]
    recs, spans = [], []
    for name, file, licence, sp in rows:
        url = srv.add(f"/v/{name}.mp4", body=(MEDIA / file).read_bytes())
        sid = ids.url_source_id(url)
        recs.append(SourceRecord(sid, "web", url=url, content_license=licence, rights_holder=f"{name} maker", title=name))
        spans += [(sid, s, e, cap) for s, e, cap in sp]
    cat = Catalog(settings.catalog)
    with cat.write() as con:
        upsert_records(con, recs)
        for r in recs:
            con.execute("INSERT INTO memberships (dataset, source_id, n_spans) VALUES ('stock', ?, 1)", [r.source_id])
        for sid, s, e, cap in spans:
            con.execute(
                "INSERT INTO clip_spans (dataset, source_id, clip_id, start_ms, end_ms, caption) VALUES ('stock', ?, ?, ?, ?, ?)",
                [sid, ids.clip_id(sid, s, e), s, e, cap],
            )


def _build(tmp_path: Path, executor: str, srv) -> tuple[dict, Catalog]:
    from clipfactory.factory.pipeline import run_pipeline

    root = tmp_path / executor
    root.mkdir()
    cfg = root / "clipfactory.toml"
    cfg.write_text(
        f'catalog = "cat.duckdb"\nstore = "store"\npurpose = "commercial"\nexecutor = "{executor}"\nworkers = 2\n'
        '[build]\nname = "stock"\nout = "builds"\nshard_size = 2\n'
        "[acquire.http]\nallow_private_addresses = true\n[quality.filter]\nmin_duration_s = 0.5\n"
    )
    settings = load_settings(cfg)
    _catalog(settings, srv)
    return run_pipeline(settings, datasets=["stock"]), Catalog(settings.catalog)


def test_ray_and_local_give_the_same_build_fetch_included(tmp_path, monkeypatch):
    if not (MEDIA / "bbb_5s.mp4").exists():
        pytest.skip("needs ../shared/data")
    monkeypatch.chdir(tmp_path)
    with TestServer() as srv:
        local, cat_l = _build(tmp_path, "local", srv)
        ray_, cat_r = _build(tmp_path, "ray", srv)
        bikes = srv.times_of("/v/bikes.mp4")
    assert bikes == []  # refused by the gate on both executors, never requested
    assert local["build"]["n_clips"] == 3
    assert local["stages"]["acquire.http"]["kept"] == ray_["stages"]["acquire.http"]["kept"] == 2
    hash_l = cat_l.query("SELECT config->>'content_hash' AS h FROM builds")[0]["h"]
    hash_r = cat_r.query("SELECT config->>'content_hash' AS h FROM builds")[0]["h"]
    assert hash_l == hash_r
    q = """SELECT stage, item_id, status, reason, output_ids FROM stage_outcomes
           WHERE stage <> 'acquire.http' ORDER BY stage, item_id"""
    assert cat_l.query(q) == cat_r.query(q)
    runs = cat_r.query("SELECT executor, status FROM runs WHERE command = 'run'")
    assert runs == [{"executor": "ray", "status": "finished"}]
