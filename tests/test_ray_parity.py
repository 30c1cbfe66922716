"""The local and the Ray executor (real raylets) agree: the same stage rows for the media stages, and the
same build for the whole factory, fetch included. One Ray instance serves every test of this file, as one
would serve a user's session: the executors use a Ray that is already running and leave it running."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from clipfactory import ids, registry
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import load_settings
from clipfactory.executors import get_executor
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.stage import StageContext
from clipfactory.storage import BlobStore

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
ray = lazy.module("ray", reason="the Ray executor needs the 'ray' extra: pip install 'clipfactory[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.own_process]

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).parent / "stages" / "synth.py")
synth = sys.modules.get("cf_synth") or importlib.util.module_from_spec(_spec)
if "cf_synth" not in sys.modules:
    sys.modules["cf_synth"] = synth
    _spec.loader.exec_module(synth)

if "cf_acquire_server" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("cf_acquire_server", Path(__file__).parent / "acquire" / "server.py")
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["cf_acquire_server"] = _mod
    _spec.loader.exec_module(_mod)
TestServer = sys.modules["cf_acquire_server"].TestServer


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (two CPUs) for the whole file; the executors find it running and leave it so."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().get_node_id()
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True)
def same_ray(ray_session):
    """After each test, the Ray the file started is still the one running: no executor shut it down or
    started another."""
    yield
    assert ray.is_initialized(), "an executor shut down a Ray it did not start"
    assert ray.get_runtime_context().get_node_id() == ray_session, "an executor replaced the running Ray"


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


@pytest.mark.shared_data
def test_ray_and_local_give_the_same_build_fetch_included(tmp_path, monkeypatch, shared_data):
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
