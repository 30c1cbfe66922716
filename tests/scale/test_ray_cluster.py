"""The whole factory (gate, fetch, analyse, cut, export, as ``clipfactory run`` does it) on a Ray cluster of
two raylets on this machine (``ray.cluster_utils.Cluster``): the same build as the local executor, workers
that never open the catalog, and a run that survives its writer dying after it loaded parts and before it
deleted them. One cluster serves the file; the input is one short generated video fetched over HTTP."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from clipfactory import ids
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
ray = lazy.module("ray", reason="the Ray executor needs the 'ray' extra: pip install 'clipfactory[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.own_process]

MB = 2**20
synth, server = sys.modules["cf_synth"], sys.modules["cf_acquire_server"]  # loaded by conftest.py
CountingServer = sys.modules["cf_scale_counting"].CountingServer


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage collector actor
    # No workers started ahead of need: the stages' workers run in their own environment (the catalog guard).
    system = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": 80 * MB,
            "include_dashboard": False,
            "_system_config": system,
        },
    )
    c.add_node(num_cpus=1, object_store_memory=80 * MB)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    if saved is None:
        os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
    else:
        os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """One 3-second video of two shots on a loopback HTTP server."""
    d = tmp_path_factory.mktemp("media")
    video = synth.make_video(
        d / "v.mp4", [("bars", 1.5), ("checker", 1.5)], size=(160, 96), keyint=25, scenecut=False, audio=None
    )
    with server.TestServer() as srv:
        srv.add("/v/one.mp4", body=video.read_bytes())
        yield srv


def _settings(root: Path, executor: str, address: str | None = None):
    root.mkdir(parents=True)
    extra = f'ray_address = "{address}"\n' if address else ""
    cfg = root / "clipfactory.toml"
    cfg.write_text(
        f'catalog = "{root}/cat.duckdb"\nstore = "{root}/store"\npurpose = "commercial"\n'
        f'executor = "{executor}"\nworkers = {1 if executor == "local" else 2}\n{extra}'
        f'[build]\nname = "gen"\nout = "{root}/builds"\nshard_size = 2\n'
        "[acquire.http]\nallow_private_addresses = true\n[quality.filter]\nmin_duration_s = 0.5\n"
    )
    return load_settings(cfg)


def _catalog(settings, srv) -> None:
    url = srv.url("/v/one.mp4")
    rec = SourceRecord(
        ids.url_source_id(url), "web", url=url, content_license="CC-BY-4.0", rights_holder="tests", title="one"
    )
    with Catalog(settings.catalog).write() as con:
        upsert_records(con, [rec])
        con.execute("INSERT INTO memberships (dataset, source_id, n_spans) VALUES ('gen', ?, 0)", [rec.source_id])


def _hash(settings) -> str:
    rows = Catalog(settings.catalog).query(
        "SELECT config->>'content_hash' AS h FROM builds ORDER BY created_at DESC LIMIT 1"
    )
    return rows[0]["h"]


OUTCOMES = """SELECT stage, item_id, status, reason, output_ids FROM latest_outcomes
              WHERE stage <> 'acquire.http' ORDER BY stage, item_id"""


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, origin):
    from clipfactory.factory.pipeline import run_pipeline

    settings = _settings(tmp_path_factory.mktemp("b") / "local", "local")
    _catalog(settings, origin)
    out = run_pipeline(settings, datasets=["gen"])
    assert out["status"] == "finished" and out["clips_exported"] >= 2  # two shots, two clips
    return settings, out


def test_two_raylets_give_the_local_build_and_survive_the_writer_dying(
    cluster, origin, local_build, tmp_path, monkeypatch
):
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.factory.pipeline import run_pipeline

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    settings = _settings(tmp_path / "ray", "ray", cluster.address)
    _catalog(settings, origin)
    cat = Catalog(settings.catalog)

    # The writer dies after loading media.probe's parts (the catalog has them) and before deleting them;
    # once dead it deletes nothing more.
    unlink = LocalExecutor._unlink_parts
    dead = []

    def dies(self, paths):
        if dead or any("-media.probe-" in p.name for p in paths):
            dead.append(True)
            raise KeyboardInterrupt("the writer dies")
        return unlink(self, paths)

    monkeypatch.setattr(LocalExecutor, "_unlink_parts", dies)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(settings, datasets=["gen"])
    parts_root = Path(str(settings.catalog) + ".parts")
    left = sorted(parts_root.rglob("*.parquet"))
    assert left, "the dead writer left the parts it had loaded"
    rows_before = cat.scalar("SELECT count(*) FROM stage_outcomes")
    monkeypatch.setattr(LocalExecutor, "_unlink_parts", unlink)

    out = run_pipeline(settings, datasets=["gen"])
    assert out["status"] == "finished"
    assert out["recovered_parts"] == len(left) and not list(parts_root.rglob("*.parquet"))
    # Loaded once: no outcome row of the dead run twice, and its rows are all still there.
    dup = cat.scalar(
        "SELECT count(*) FROM (SELECT run_id, stage, item_id, attempt FROM stage_outcomes GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dup == 0
    first_run = cat.scalar("SELECT run_id FROM runs WHERE command = 'run' ORDER BY started_at LIMIT 1")
    assert cat.scalar("SELECT count(*) FROM stage_outcomes WHERE run_id = ?", [first_run]) == rows_before
    # The stages the dead run finished are not run again (the source has its blob: nothing to fetch).
    assert out["resumed"]["policy.gate"] == 1 and out["resumed"]["media.probe"] == 1 and out["fetched"] == 0

    local_settings, local_out = local_build
    assert out["clips_exported"] == local_out["clips_exported"]
    assert _hash(settings) == _hash(local_settings)
    assert cat.query(OUTCOMES) == Catalog(local_settings.catalog).query(OUTCOMES)
    assert cat.query("SELECT DISTINCT executor FROM runs WHERE command = 'run'") == [{"executor": "ray"}]


def test_fetch_workers_on_two_raylets_share_the_per_host_limits(cluster, tmp_path):
    """Two fetch workers, one on each raylet, each allowed 2 connections and 4 requests a second to the
    origin on its own: together they still send at most 2 at once and 4 a second (plus the burst of 1)."""
    from clipfactory.executors.ray import RayExecutor
    from clipfactory.stage import StageContext
    from clipfactory.stages.acquire.http import HttpFetchStage

    with CountingServer(delay_s=0.5) as srv:
        urls = [f"{srv.origin}/v/{i}.mp4" for i in range(12)]
        sources = [SourceRecord(ids.url_source_id(u), "web", url=u, content_license="CC-BY-4.0") for u in urls]
        cat = Catalog(tmp_path / "cat.duckdb")
        ctx = StageContext(store_root=str(tmp_path / "store"), catalog_path=str(cat.path))
        options = {"allow_private_addresses": True, "per_host_connections": 2, "per_host_rate": 4.0, "per_host_burst": 1}
        stage = HttpFetchStage(options, ctx)
        stage.batch_size = 3  # four batches for two workers
        ex = RayExecutor(cat, workers=2, retries=1)
        try:
            out = ex.run([stage], sources)
        finally:
            ex.shutdown()
    assert len(out.outputs) == 12 and all(s.blob_uri for s in out.outputs)
    # Each worker's fetcher asked for robots.txt once: two workers fetched.
    assert srv.paths.count("/robots.txt") == 2
    assert srv.max_active == 2  # reached, never passed
    assert srv.most_in_window(1.0) <= 5  # 4 a second, and a burst of 1
    assert len(srv.starts) == 12 + 4  # the videos, and robots.txt and tdmrep.json per worker
