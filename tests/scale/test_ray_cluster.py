"""The Ray executor on real raylets: a cluster of two raylets on this machine (``ray.cluster_utils.Cluster``)
serves the whole file, as one would serve a user's session (the executors use a Ray that is already
running and leave it running).

- The whole factory (gate, fetch, analyse, cut, export, as ``clipfactory run`` does it) gives the same build
  as the local executor, with workers that never open the catalog, and a run survives its writer dying after
  it loaded parts and before it deleted them (one short generated video fetched over HTTP).
- Fetch workers on the two raylets share the per-host limits.
- A raylet killed mid-run loses only its batch in flight, which Ray runs again on the other raylet.
- The local and the Ray executor write the same stage rows for the media stages, and the same build for the
  whole factory, fetch included, on real media."""

from __future__ import annotations

import os
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

MB = 2**20
synth, server = sys.modules["cf_synth"], sys.modules["cf_acquire_server"]  # loaded by conftest.py
CountingServer = sys.modules["cf_scale_counting"].CountingServer
TestServer = server.TestServer
#: The runs here compare executors: the analysis reads no text and the clips get no NSFW or face scores, so
#: that no Ray worker loads those models (their own tests are tests/media/test_ocr.py and tests/signals/);
#: with them, each worker held about 100 MB more, and the file's peak came near 2 GB.
NO_MODELS = "[media.analyse]\ndetect_text = false\n[signals.visual]\nnsfw = false\nfaces = false\n"
MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"


BUCKET = "clipfactory-ray"


class _LazyS3:
    """A moto S3 server for the tests that put parts on S3, on a loopback port chosen (and written into the
    AWS settings) before the raylets start, so that their workers have the settings too, as a cluster's
    machines would; the server itself starts when a test first asks for its client, so moto is not loaded
    while the earlier tests run (the file's memory peak)."""

    def __init__(self, port: int):
        self.port, self.server, self._client = port, None, None

    def client(self):
        if self._client is None:
            import logging

            import boto3
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self.server.start()
            self._client = boto3.client("s3")
            self._client.create_bucket(Bucket=BUCKET)
        return self._client


@pytest.fixture(scope="module")
def s3_env():
    """The lazy S3 server (``None`` without moto and s3fs) and the AWS settings that point at it."""
    import importlib.util
    import socket

    if not (importlib.util.find_spec("moto") and importlib.util.find_spec("s3fs")):
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    lazy_s3 = _LazyS3(port)
    yield lazy_s3
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if lazy_s3.server is not None:
        lazy_s3.server.stop()


@pytest.fixture(scope="module")
def cluster(s3_env):
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


@pytest.fixture(autouse=True)
def same_ray(cluster):
    """After each test, the Ray the file started is still the one running: no executor shut it down or
    started another."""
    node = ray.get_runtime_context().get_node_id()
    yield
    assert ray.is_initialized(), "an executor shut down a Ray it did not start"
    assert ray.get_runtime_context().get_node_id() == node, "an executor replaced the running Ray"


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


@pytest.fixture
def on_ray(monkeypatch):
    """The names of the stages that Ray ran (each a Ray Data ``map_batches`` of the stage), in order: a Ray
    executor that ran its stages in the driver, as the local executor does, would write the same rows and
    the same build, and the comparisons with the local executor would pass all the same."""
    from ray.data import Dataset

    ran: list[str] = []
    real = Dataset.map_batches

    def spy(self, fn, *args, **kwargs):
        params = kwargs.get("fn_args") or kwargs.get("fn_constructor_args") or ()
        if params and isinstance(params[0], type):
            ran.append(params[0].name)
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(Dataset, "map_batches", spy)
    return ran


def _settings(root: Path, executor: str, address: str | None = None, *, name: str = "gen", parts: str | None = None):
    root.mkdir(parents=True)
    extra = f'ray_address = "{address}"\n' if address else ""
    extra += f'parts = "{parts}"\n' if parts else ""
    cfg = root / "clipfactory.toml"
    cfg.write_text(
        f'catalog = "{root}/cat.duckdb"\nstore = "{root}/store"\npurpose = "commercial"\n'
        f'executor = "{executor}"\nworkers = {1 if executor == "local" else 2}\n{extra}'
        f'[build]\nname = "{name}"\nout = "{root}/builds"\nshard_size = 2\n'
        "[acquire.http]\nallow_private_addresses = true\n[quality.filter]\nmin_duration_s = 0.5\n" + NO_MODELS
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


def test_fetch_workers_on_two_raylets_share_the_per_host_limits(cluster, tmp_path):
    """Two fetch workers, one on each raylet, each allowed 2 connections and 4 requests a second to the
    origin on its own: together they still send at most 2 at once and 4 a second (plus the burst of 1)."""
    from clipfactory.executors.ray import RayExecutor
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


# -- the local and the Ray executor agree --------------------------------------------------------------
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


def _run_stages(executor_name: str, root: Path, sources: list[SourceRecord], store_root: Path) -> Catalog:
    cat = Catalog(root / "catalog.duckdb")
    ctx = StageContext(store_root=str(store_root), catalog_path=str(cat.path))
    # the local executor in-process, Ray on both raylets
    ex = get_executor(executor_name, cat, workers=1 if executor_name == "local" else 2, error_budget=1.0)
    try:
        current: list = sources
        run_id = ex.start_run("parity")
        for name in STAGES:
            if name == "media.cut":
                current = [r for r in current if isinstance(r, ClipRecord)]
            stage = registry.get(name)({"detect_text": False} if name == "media.analyse" else {}, ctx)
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


def test_local_and_ray_executors_write_the_same_rows(cluster, tmp_path, on_ray):
    store_root = tmp_path / "store"
    sources = _sources(BlobStore(store_root), tmp_path)
    local = _rows(_run_stages("local", tmp_path / "local", sources, store_root))
    assert on_ray == []  # the local executor does not use Ray
    ray_rows = _rows(_run_stages("ray", tmp_path / "ray", sources, store_root))
    assert set(on_ray) == set(STAGES), on_ray  # every stage of the Ray side ran on Ray
    assert len(local["clips"]) >= 3
    assert any(o["status"] == "failed" for o in local["outcomes"])  # the non-media file is a failure row
    assert local["sources"] == ray_rows["sources"]
    assert local["clips"] == ray_rows["clips"]
    assert local["outcomes"] == ray_rows["outcomes"]


def _stock_catalog(settings, srv) -> None:
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


def _stock_build(tmp_path: Path, executor: str, srv) -> tuple[dict, Catalog]:
    from clipfactory.factory.pipeline import run_pipeline

    settings = _settings(tmp_path / executor, executor, name="stock")
    _stock_catalog(settings, srv)
    return run_pipeline(settings, datasets=["stock"]), Catalog(settings.catalog)


@pytest.mark.shared_data
def test_ray_and_local_give_the_same_build_fetch_included(cluster, tmp_path, monkeypatch, shared_data, on_ray):
    monkeypatch.chdir(tmp_path)
    with TestServer() as srv:
        local, cat_l = _stock_build(tmp_path, "local", srv)
        assert on_ray == []
        ray_, cat_r = _stock_build(tmp_path, "ray", srv)
        bikes = srv.times_of("/v/bikes.mp4")
    assert {"acquire.http", "media.probe", "media.analyse", "media.cut"} <= set(on_ray), on_ray
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


# -- the whole factory with the workers writing parts to S3 (last: their workers keep s3fs loaded) ---------
def test_two_raylets_give_the_local_build_and_survive_the_writer_dying(
    cluster, s3_env, origin, local_build, tmp_path, monkeypatch, on_ray
):
    """With ``parts`` on S3 the Ray workers write their batches' parts to the bucket themselves; the driver
    loads them. A writer that dies after loading some leaves them there, and the next run loads each once."""
    from clipfactory.catalog.meta import catalog_id
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.factory.pipeline import run_pipeline

    if s3_env is None:
        pytest.skip("parts on S3 need moto[server] and s3fs: pip install 'clipfactory[dev]'")
    s3 = s3_env.client()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    settings = _settings(tmp_path / "ray", "ray", cluster.address, parts=f"s3://{BUCKET}/parts")
    _catalog(settings, origin)
    cat = Catalog(settings.catalog)

    # The writer dies after loading media.probe's parts (the catalog has them) and before deleting them;
    # once dead it deletes nothing more.
    unlink = LocalExecutor._unlink_parts
    dead = []
    written_by = LocalExecutor._write_parts
    by_driver: list[str] = []

    def dies(self, names, *store):
        if dead or any("-media.probe-" in n for n in names):
            dead.append(True)
            raise KeyboardInterrupt("the writer dies")
        return unlink(self, names, *store)

    def driver_writes(self, run_id, stage, seq, results, attempt):
        by_driver.append(stage.name)
        return written_by(self, run_id, stage, seq, results, attempt)

    monkeypatch.setattr(LocalExecutor, "_unlink_parts", dies)
    monkeypatch.setattr(LocalExecutor, "_write_parts", driver_writes)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(settings, datasets=["gen"])
    prefix = f"parts/{catalog_id(cat)}/"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    left = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    assert any("-media.probe-" in k for k in left), "the dead writer left the probe's parts in the bucket"
    assert "media.probe" not in by_driver, "the Ray workers wrote the probe's parts, not the driver"
    assert not Path(str(settings.catalog) + ".parts").exists()
    rows_before = cat.scalar("SELECT count(*) FROM stage_outcomes")
    monkeypatch.setattr(LocalExecutor, "_unlink_parts", unlink)

    # In the run that resumes, media.analyse also finds the parts of a task that Ray ran a second time (its
    # first run's node died after the worker wrote them): no result names them, and the stage deletes them.
    from clipfactory.executors.parts import write_batch_parts
    from clipfactory.executors.ray import RayExecutor
    from clipfactory.records import Result

    process = RayExecutor._process

    def with_a_rerun_task(self, stage, items):
        if stage.name == "media.analyse":
            prefix_of_stage_run = f"{self._run_id}/{self._tag}-a01-0000000000000000rerun0-{stage.name}"
            write_batch_parts(self.parts, prefix_of_stage_run, self._run_id, stage, [Result("lost-task", Result.KEPT)], {})
        yield from process(self, stage, items)

    monkeypatch.setattr(RayExecutor, "_process", with_a_rerun_task)
    out = run_pipeline(settings, datasets=["gen"])
    assert out["status"] == "finished"
    assert out["recovered_parts"] == len(left)
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents")
    assert cat.scalar("SELECT count(*) FROM stage_outcomes WHERE item_id = 'lost-task'") == 0
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
    # the media stages ran on Ray (the probe in the run that died, the others after the resume), and their
    # workers wrote their parts
    assert {"media.probe", "media.analyse", "media.cut"} <= set(on_ray), on_ray
    assert not {"media.probe", "media.analyse", "media.cut"} & set(by_driver), by_driver


# -- retries with the workers writing the parts ------------------------------------------------------------
from clipfactory.errors import TransientError  # noqa: E402
from clipfactory.records import Result  # noqa: E402
from clipfactory.stage import Stage, StageConfig  # noqa: E402


class FailsOnce(Stage):
    """Fails each item transiently on its first attempt (a marker file per item), then keeps it."""

    name = "test.fails_once"
    batch_size = 2
    input_type = SourceRecord

    class Config(StageConfig):
        marks: str = ""

    def process(self, item):
        mark = Path(self.config.marks) / item.source_id.replace(":", "_")
        if not mark.exists():
            mark.write_text("seen")
            raise TransientError("busy", item=item.source_id)
        return Result.kept(item.source_id, item)


def test_a_retried_item_keeps_only_its_last_attempt_with_parts_on_s3(cluster, s3_env, tmp_path):
    """Transient failures retried on Ray, the workers writing parts to the bucket: as on the local executor,
    the catalog stores each item's final attempt only (kept, attempt 2), not the failure it recovered from."""
    import ray.cloudpickle

    from clipfactory.executors.ray import RayExecutor

    if s3_env is None:
        pytest.skip("parts on S3 need moto[server] and s3fs: pip install 'clipfactory[dev]'")
    s3_env.client()  # the server, and the bucket
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    sources = [SourceRecord(f"owned:{i:04d}", "owned") for i in range(4)]
    rows = {}
    for side in ("local", "ray"):
        (tmp_path / side).mkdir()
        cat = Catalog(tmp_path / side / "cat.duckdb")
        stage = FailsOnce({"marks": str(tmp_path / side)})
        if side == "local":
            ex = get_executor("local", cat, retries=3, backoff_s=0.001)
        else:
            ex = RayExecutor(cat, workers=2, retries=3, backoff_s=0.001, parts=f"s3://{BUCKET}/retries")
        out = ex.run([stage], sources)
        assert out.stages[0].kept == 4 and out.stages[0].failed == 0
        rows[side] = cat.query("SELECT item_id, status, attempt FROM stage_outcomes ORDER BY item_id, attempt")
    assert rows["local"] == [{"item_id": s.source_id, "status": "kept", "attempt": 2} for s in sources]
    assert rows["ray"] == rows["local"]


# -- a node lost mid-run -------------------------------------------------------------------------------------
class StallsOnTheOtherNode(Stage):
    """Logs each call; the first call that runs on a raylet other than ``head`` marks itself and waits there
    (its node is killed under it); every other call keeps its item at once."""

    name = "test.stalls_on_the_other_node"
    batch_size = 1
    input_type = SourceRecord

    class Config(StageConfig):
        marks: str = ""
        head: str = ""

    def process(self, item):
        import time

        node = ""
        if self.config.head:
            import ray as _ray

            node = _ray.get_runtime_context().get_node_id()
        marks = Path(self.config.marks)
        with open(marks / "calls.log", "a") as f:
            f.write(f"{item.source_id} {node}\n")
        stalled = marks / "stalled"
        if node and node != self.config.head and not stalled.exists():
            stalled.write_text(f"{item.source_id} {node}")
            time.sleep(120)  # the test kills this raylet
        return Result.kept(item.source_id, item)


def test_a_raylet_killed_mid_run_loses_only_its_batch_in_flight(cluster, tmp_path):
    """The second raylet is killed while it runs a batch: Ray runs that batch again on the other raylet, the
    run finishes with every item kept and the same stage rows as the local executor, and no other item ran
    twice."""
    import threading
    import time

    import ray.cloudpickle

    from clipfactory.executors.ray import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    head = ray.get_runtime_context().get_node_id()
    sources = [SourceRecord(f"owned:{i:04d}", "owned") for i in range(6)]
    rows, calls = {}, {}
    killed: list[str] = []
    try:
        for side in ("local", "ray"):
            marks = tmp_path / side
            marks.mkdir()
            cat = Catalog(marks / "cat.duckdb")
            stage = StallsOnTheOtherNode({"marks": str(marks), "head": head if side == "ray" else ""})
            stop = threading.Event()
            watcher = None
            if side == "local":
                ex = get_executor("local", cat)
            else:
                ex = RayExecutor(cat, workers=2)

                def kill_when_stalled(marks=marks, stop=stop):
                    while not stop.is_set():
                        if (marks / "stalled").exists():
                            item, node_id = (marks / "stalled").read_text().split()
                            node = next(n for n in cluster.list_all_nodes() if n.node_id == node_id)
                            cluster.remove_node(node)
                            killed.append(item)
                            return
                        time.sleep(0.05)

                watcher = threading.Thread(target=kill_when_stalled, daemon=True)
                watcher.start()
            try:
                out = ex.run([stage], sources)
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join(5)
            assert out.stages[0].kept == 6 and out.stages[0].failed == 0
            rows[side] = cat.query("SELECT item_id, status, attempt FROM stage_outcomes ORDER BY item_id")
            calls[side] = [line.split()[0] for line in (marks / "calls.log").read_text().splitlines()]
    finally:
        if killed:  # the cluster serves the rest of the file with two raylets again
            cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
            cluster.wait_for_nodes()
    assert len(killed) == 1, "no batch ran on the second raylet"
    assert rows["ray"] == rows["local"] == [
        {"item_id": s.source_id, "status": "kept", "attempt": 1} for s in sources
    ]
    assert sorted(calls["local"]) == [s.source_id for s in sources]
    # Only the batch in flight on the killed raylet ran again.
    assert sorted(calls["ray"]) == sorted([s.source_id for s in sources] + killed)
