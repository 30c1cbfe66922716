"""Object storage for real: blobs, clips and build shards on an S3 API server (moto's threaded server on
127.0.0.1, started here), through fsspec and s3fs. Large files go up in parts; an upload that fails or is
killed half way leaves no object under its final name; a whole build with its store and its output on
s3:// reads back byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
boto3 = lazy.module("boto3", reason="the S3 tests need moto[server]: pip install 'moto[server]'")
lazy.module("s3fs", reason="storage on S3 needs the 's3' extra: pip install 'clipfactory[s3]'")
moto_server = lazy.module("moto.server", reason="the S3 tests need moto[server]: pip install 'moto[server]'")

from clipfactory.storage import BlobStore, ObjectBlobStore, upload_file, write_object  # noqa: E402

synth = sys.modules["cf_synth"]  # loaded by conftest.py
MiB = 2**20
BUCKET = "clipfactory-test"
#: The models a build needs none of here (they take seconds to load): what the build-reading tests turn off.
NO_MODELS = "[media.analyse]\ndetect_text = false\n[signals.visual]\nnsfw = false\nfaces = false\n"
ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port, one bucket, and the AWS settings that point at it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    env = {
        **ENV,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "CLIPFACTORY_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    srv.stop()


def _keys(client, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _missing(client, key: str) -> bool:
    try:
        client.head_object(Bucket=BUCKET, Key=key)
    except client.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")
    return False


def test_a_large_shard_goes_up_in_parts_and_reads_back(s3, tmp_path):
    data = os.urandom(11 * MiB)
    src = tmp_path / "shard-000000.tar"
    src.write_bytes(data)
    upload_file(src, f"s3://{BUCKET}/parts/shard-000000.tar", part_size=5 * MiB)
    head = s3.head_object(Bucket=BUCKET, Key="parts/shard-000000.tar")
    assert head["ContentLength"] == 11 * MiB
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of 5 + 5 + 1 MiB
    body = s3.get_object(Bucket=BUCKET, Key="parts/shard-000000.tar")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_an_upload_that_fails_half_way_leaves_no_object(s3):
    from clipfactory.storage import filesystem

    fs, path = filesystem(f"s3://{BUCKET}/parts/failed.tar")

    def chunks():
        yield os.urandom(6 * MiB)  # one part goes up
        yield os.urandom(1 * MiB)
        raise OSError("the disk under the shard failed")

    with pytest.raises(OSError, match="disk"):
        write_object(fs, path, chunks(), part_size=5 * MiB)
    assert _missing(s3, "parts/failed.tar")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # aborted, not left behind


def test_a_killed_upload_leaves_no_object(s3, tmp_path):
    """The uploading process is killed after its first part: the final name never appears (the
    unfinished multipart upload is invisible until something aborts it)."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from clipfactory.storage import filesystem, write_object
        fs, path = filesystem("s3://{BUCKET}/parts/killed.tar")
        def chunks():
            yield os.urandom(6 * 2**20)
            yield b"x"  # the first part is sent before this one is asked for
            print("sent", flush=True)
            time.sleep(60)
            yield b"never"
        write_object(fs, path, chunks(), part_size=5 * 2**20)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 20
        while not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"):
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _missing(s3, "parts/killed.tar")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []
    assert [u["Key"] for u in uploads] == ["parts/killed.tar"]
    for u in uploads:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])


def test_a_blob_store_on_s3_reads_back_on_another_machine(s3, tmp_path):
    store = BlobStore(f"s3://{BUCKET}/blobs-test")
    assert isinstance(store, ObjectBlobStore)
    uri = store.put_bytes(b"clip bytes")
    sha = hashlib.sha256(b"clip bytes").hexdigest()
    assert uri == f"blob:sha256:{sha}"
    assert _keys(s3, "blobs-test/") == [f"blobs-test/blobs/{sha[:2]}/{sha[2:4]}/{sha}"]
    # Another machine: same URL, an empty cache of its own.
    other = ObjectBlobStore(f"s3://{BUCKET}/blobs-test", cache=tmp_path / "other")
    assert other.path_of(uri).read_bytes() == b"clip bytes"
    assert list(other.iter_blobs()) == [uri]
    s3.put_object(Bucket=BUCKET, Key=f"blobs-test/blobs/{sha[:2]}/{sha[2:4]}/{sha}", Body=b"other bytes")
    third = ObjectBlobStore(f"s3://{BUCKET}/blobs-test", cache=tmp_path / "third")
    with pytest.raises(Exception, match="other bytes"):
        third.path_of(uri)  # damaged in the store: refused, not cached
    assert not third.path(sha).exists()


def test_a_whole_build_on_s3_reads_back(s3, tmp_path, monkeypatch):
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.5), ("checker", 1.5)], size=(160, 96), keyint=25, scenecut=False, audio=None)
    (tmp_path / "clipfactory.toml").write_text(
        f'catalog = "cat.duckdb"\nstore = "s3://{BUCKET}/store"\npurpose = "commercial"\n'
        'inputs = ["owned.mp4"]\nlicense = "CC-BY-4.0"\nrights_holder = "tests"\n'
        f'[build]\nname = "owned"\nout = "s3://{BUCKET}/builds"\nshard_size = 1\n'
        "[quality.filter]\nmin_duration_s = 0.5\n"
    )
    settings = load_settings(tmp_path / "clipfactory.toml")
    out = run_pipeline(settings)
    assert out["status"] == "finished" and out["clips_exported"] == 2
    cat = Catalog(settings.catalog)
    build = cat.query("SELECT build_id, out_dir, n_shards FROM builds")[0]
    assert build["out_dir"] == f"s3://{BUCKET}/builds/owned/v1" and build["n_shards"] == 2
    keys = _keys(s3, "builds/owned/v1/")
    assert {"builds/owned/v1/build.json", "builds/owned/v1/index.parquet"} <= set(keys)
    # The source and both clips are blobs in the bucket.
    blobs = set(_keys(s3, "store/blobs/"))
    src_sha = hashlib.sha256((tmp_path / "owned.mp4").read_bytes()).hexdigest()
    members = cat.query("SELECT clip_id, shard, mp4_sha256 FROM build_members ORDER BY clip_id")
    assert len(members) == 2
    for sha in [src_sha] + [m["mp4_sha256"] for m in members]:
        assert f"store/blobs/{sha[:2]}/{sha[2:4]}/{sha}" in blobs
    # Each shard read back from the bucket holds its clip, byte for byte.
    for m in members:
        body = s3.get_object(Bucket=BUCKET, Key=f"builds/owned/v1/{m['shard']}")["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            mp4 = tar.extractfile(f"{m['clip_id']}.mp4").read()
        assert hashlib.sha256(mp4).hexdigest() == m["mp4_sha256"]
    # A run again finds the build it wrote in the bucket: unchanged, no second version.
    again = run_pipeline(settings)
    assert again["build"]["status"] == "unchanged"
    assert cat.scalar("SELECT count(*) FROM builds") == 1
    assert not any(Path(os.environ["CLIPFACTORY_CACHE_DIR"]).rglob("staging/owned/*/build.json"))


def test_a_store_url_given_as_a_path_option_is_a_url_again(tmp_path, monkeypatch):
    """``--store s3://bucket/x`` reaches the settings through a path-typed option, which collapses ``//``."""
    from clipfactory.config import load_settings

    monkeypatch.chdir(tmp_path)
    assert load_settings(overrides={"store": str(Path(f"s3://{BUCKET}/store"))}).store == f"s3://{BUCKET}/store"
    assert load_settings(overrides={"store": str(Path("media/store"))}).store == "media/store"


def test_parts_on_s3_survive_a_dead_writer_and_stay_with_their_catalog(s3, tmp_path, monkeypatch):
    """``parts = "s3://..."``: results wait in the bucket, under the catalog's own folder, until loaded. A
    writer that dies after loading them and before deleting them leaves them there; the next run of the
    same catalog loads none twice and removes them, and another catalog sharing the location never sees
    them."""
    from clipfactory.catalog import Catalog
    from clipfactory.catalog.meta import catalog_id
    from clipfactory.config import load_settings
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.0), ("checker", 1.0)], size=(128, 72), keyint=25, scenecut=False, audio=None)

    def settings_for(name: str):
        (tmp_path / f"{name}.toml").write_text(
            f'catalog = "{name}.duckdb"\nstore = "store"\nparts = "s3://{BUCKET}/shared-parts"\n'
            'inputs = ["owned.mp4"]\nlicense = "CC-BY-4.0"\nrights_holder = "tests"\n'
            f'[build]\nname = "{name}"\nout = "builds"\n[quality.filter]\nmin_duration_s = 0.5\n'
        )
        return load_settings(tmp_path / f"{name}.toml")

    first = settings_for("first")
    unlink = LocalExecutor._unlink_parts
    dead: list[bool] = []

    def dies(self, names, *store):
        if dead or any("-media.probe-" in n for n in names):
            dead.append(True)
            raise KeyboardInterrupt("the writer dies")
        return unlink(self, names, *store)

    monkeypatch.setattr(LocalExecutor, "_unlink_parts", dies)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(first)
    monkeypatch.setattr(LocalExecutor, "_unlink_parts", unlink)
    cat = Catalog(first.catalog)
    prefix = f"shared-parts/{catalog_id(cat)}/"
    left = _keys(s3, prefix)
    assert left and all(k.endswith(".parquet") for k in left), "the dead writer's parts wait in the bucket"
    assert any("-media.probe-" in k and k.endswith("-outcomes.parquet") for k in left)
    assert not (tmp_path / "first.duckdb.parts").exists(), "nothing was written beside the catalog"
    rows_before = cat.scalar("SELECT count(*) FROM stage_outcomes")
    assert rows_before > 0

    # Another catalog with the same parts location: its own folder, the first one's parts untouched.
    other = run_pipeline(settings_for("other"))
    assert other["status"] == "finished" and other["recovered_parts"] == 0
    assert _keys(s3, prefix) == left
    assert not _keys(s3, f"shared-parts/{catalog_id(Catalog(tmp_path / 'other.duckdb'))}/")

    again = run_pipeline(first)
    assert again["status"] == "finished" and again["recovered_parts"] == len(left)
    assert not _keys(s3, prefix)
    dup = cat.scalar(
        "SELECT count(*) FROM (SELECT run_id, stage, item_id, attempt FROM stage_outcomes GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dup == 0
    first_run = cat.scalar("SELECT run_id FROM runs WHERE command = 'run' ORDER BY started_at LIMIT 1")
    assert cat.scalar("SELECT count(*) FROM stage_outcomes WHERE run_id = ?", [first_run]) == rows_before
    assert again["clips_exported"] == other["clips_exported"] == 2


def test_a_parts_location_that_cannot_be_reached_is_one_error_naming_the_setting(s3, tmp_path, monkeypatch):
    """A ``parts`` bucket that does not exist stops the run before any work, and a part that cannot be
    written is the same kind of error: the setting, the cause and the fix."""
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.executors import parts as parts_mod
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.setattr(parts_mod, "BACKOFF_S", 0.01)
    monkeypatch.chdir(tmp_path)
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.0)], size=(64, 48), keyint=25, scenecut=False, audio=None)
    (tmp_path / "clipfactory.toml").write_text(
        'catalog = "cat.duckdb"\nstore = "store"\nparts = "s3://no-such-bucket-here/parts"\n'
        'inputs = ["owned.mp4"]\nlicense = "CC-BY-4.0"\nrights_holder = "tests"\n'
    )
    with pytest.raises(parts_mod.PartsStorageError) as err:
        run_pipeline(load_settings(tmp_path / "clipfactory.toml"))
    text = str(err.value)
    assert text.startswith("parts = s3://no-such-bucket-here/parts: ")
    assert "no-such-bucket-here" in text and "fix:" in text and "AWS_ENDPOINT_URL" in text
    cat = Catalog(tmp_path / "cat.duckdb")
    assert cat.scalar("SELECT count(*) FROM stage_outcomes") == 0, "no stage ran"

    store = parts_mod.PartStore(f"s3://no-such-bucket-here/parts/{'0' * 32}")
    calls = []
    real = parts_mod.PartStore._call

    def counted(self, what, fn):
        calls.append(what)
        return real(self, what, fn)

    monkeypatch.setattr(parts_mod.PartStore, "_call", counted)
    import pyarrow as pa

    with pytest.raises(parts_mod.PartsStorageError, match="could not write the part r/x.parquet"):
        store.write("r/x.parquet", pa.table({"a": [1]}))
    assert calls == ["write the part r/x.parquet"]


def _owned_config(tmp_path, *, store: str, out: str) -> Path:
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.5)], size=(160, 96), keyint=25, scenecut=False, audio=None)
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        f'catalog = "cat.duckdb"\nstore = "{store}"\npurpose = "commercial"\ninputs = ["owned.mp4"]\n'
        f'license = "CC-BY-4.0"\nrights_holder = "tests"\n[build]\nname = "owned"\nout = "{out}"\n'
        "[quality.filter]\nmin_duration_s = 0.5\n"
    )
    return cfg


def test_a_store_bucket_that_does_not_exist_stops_the_run_before_any_work(s3, tmp_path, monkeypatch):
    from clipfactory.config import load_settings
    from clipfactory.errors import ConfigError
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    cfg = _owned_config(tmp_path, store="s3://missing-bucket/x", out="builds")
    with pytest.raises(ConfigError) as err:
        run_pipeline(load_settings(cfg))
    text = str(err.value)
    assert text.startswith("store = s3://missing-bucket/x: could not list the bucket 'missing-bucket'"), text
    assert "(fix: check that the bucket exists" in text and "AWS_ENDPOINT_URL" in text
    assert "owned.mp4" not in text
    assert not (tmp_path / "cat.duckdb").exists(), "the catalog was not even opened: no run, no outcome"


def test_a_build_out_bucket_that_does_not_exist_is_one_line_from_the_cli(s3, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    monkeypatch.chdir(tmp_path)
    cfg = _owned_config(tmp_path, store=f"s3://{BUCKET}/store-out-check", out="s3://missing-bucket/builds")
    res = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    text = " ".join(lines[0].split())
    assert text.startswith("error: build.out = s3://missing-bucket/builds: could not list the bucket 'missing-bucket'"), text
    assert "AWS_ACCESS_KEY_ID" in text and "Traceback" not in res.output
    assert not (tmp_path / "cat.duckdb").exists()
    assert not _keys(s3, "store-out-check/"), "nothing was written to the store"


def test_a_store_that_cannot_be_reached_is_not_mistaken_for_a_missing_input(s3, tmp_path, monkeypatch):
    """Past the early check (the bucket goes away during the run), a blob write that fails on the bucket is an
    error about ``store``; the input file, which exists, is not reported missing."""
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.errors import ClipfactoryError
    from clipfactory.factory import pipeline

    with pytest.raises(ClipfactoryError, match=r"^store = s3://missing-bucket/x: could not write the blob ") as err:
        ObjectBlobStore("s3://missing-bucket/x", cache=tmp_path / "cache").put_bytes(b"clip bytes")
    assert not isinstance(err.value, FileNotFoundError), type(err.value).__mro__  # the error raised, not its base

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "check_location", lambda setting, url: None)
    cfg = _owned_config(tmp_path, store="s3://missing-bucket/x", out="builds")
    try:
        pipeline.run_pipeline(load_settings(cfg))
    except Exception as exc:  # whatever the run ends with, it is not "file not found"
        assert "file not found" not in str(exc)
    rows = Catalog(tmp_path / "cat.duckdb").query(
        "SELECT status, error_kind, error FROM stage_outcomes WHERE stage = 'acquire.local'"
    )
    assert [(r["status"], r["error_kind"]) for r in rows] == [("failed", "terminal")]
    assert rows[0]["error"].startswith("store = s3://missing-bucket/x: could not write the blob"), rows[0]["error"]
    assert "file not found" not in rows[0]["error"]


def test_a_build_out_bucket_that_goes_away_is_an_error_about_build_out(s3, tmp_path, monkeypatch):
    """Past the early check, an upload of the build that the bucket refuses names ``build.out``, not a file."""
    from clipfactory.config import load_settings
    from clipfactory.errors import ClipfactoryError
    from clipfactory.factory import pipeline

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "check_location", lambda setting, url: None)
    cfg = _owned_config(tmp_path, store="store", out="s3://missing-bucket/builds")
    with pytest.raises(ClipfactoryError) as err:
        pipeline.run_pipeline(load_settings(cfg))
    assert str(err.value).startswith("build.out = s3://missing-bucket/builds: could not upload the build to "), err.value


def test_a_run_after_a_finished_one_on_s3_parts_does_not_need_the_bucket(s3, tmp_path, monkeypatch):
    """Once a run with ``parts`` on S3 has loaded all its parts, the next run with parts beside the catalog
    does not list that bucket: it runs where the bucket cannot be reached (no endpoint there)."""
    import s3fs

    from clipfactory.config import load_settings
    from clipfactory.executors import parts as parts_mod
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.setattr(parts_mod, "BACKOFF_S", 0.01)
    monkeypatch.chdir(tmp_path)
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.0)], size=(64, 48), keyint=25, scenecut=False, audio=None)

    def settings_with(parts_line: str):
        (tmp_path / "clipfactory.toml").write_text(
            f'catalog = "cat.duckdb"\nstore = "store"\n{parts_line}'
            'inputs = ["owned.mp4"]\nlicense = "CC-BY-4.0"\nrights_holder = "tests"\n'
            "[quality.filter]\nmin_duration_s = 0.5\n"
        )
        return load_settings(tmp_path / "clipfactory.toml")

    assert run_pipeline(settings_with(f'parts = "s3://{BUCKET}/once"\n'))["status"] == "finished"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        again = run_pipeline(settings_with(""))
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert again["status"] == "finished" and again["recovered_parts"] == 0


def _build_on_s3(runner, tmp_path: Path, name: str, prefix: str, videos: dict[str, list]) -> Path:
    """``clipfactory run`` of owned videos (``{file: shots}``) made in ``tmp_path``, one clip a shard, the
    build written to ``s3://BUCKET/<prefix>``; returns the config file."""
    from clipfactory.cli.app import app

    for file, shots in videos.items():
        synth.make_video(tmp_path / file, shots, size=(128, 72), keyint=25, scenecut=False, audio=None)
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        f'catalog = "cat.duckdb"\nstore = "store"\npurpose = "commercial"\ninputs = {json.dumps(list(videos))}\n'
        'license = "CC-BY-4.0"\nrights_holder = "tests"\n'
        f'[build]\nname = "{name}"\nout = "s3://{BUCKET}/{prefix}"\nshard_size = 1\n'
        "[quality.filter]\nmin_duration_s = 0.5\n" + NO_MODELS
    )
    res = runner.invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    return cfg


def _tar_members(client, keys: list[str]) -> tuple[int, set[str]]:
    """Files in the tar objects ``keys`` of the bucket, read with boto3: how many, and their clip keys."""
    n, clips = 0, set()
    for key in keys:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            for info in tar:
                if info.isfile():
                    n += 1
                    clips.add(info.name.split(".", 1)[0])
    return n, clips


def test_verify_report_and_audit_read_a_build_on_s3(s3, tmp_path, monkeypatch):
    """The commands that read a finished build read it from the bucket: verify scans every member of
    every shard there, report and audit read its build.json and index; a shard deleted from the bucket
    (or its build.json) makes verify fail, never "clean"."""
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    cfg = _build_on_s3(runner, tmp_path, "s3ex", "read-builds", {"owned.mp4": [("bars", 1.0), ("checker", 1.0)]})
    prefix = "read-builds/s3ex/v1/"
    shards = [k for k in _keys(s3, prefix) if k.endswith(".tar")]
    assert len(shards) == 2
    n_files, clips = _tar_members(s3, shards)
    assert len(clips) == 2 and n_files >= 4  # each clip: its mp4 and its json at least

    def cli(*args: str):
        return runner.invoke(app, [*args, "--config", str(cfg), "--json"])

    res = cli("verify", "--build", "s3ex-v1")
    assert res.exit_code == 0, res.output
    v = json.loads(res.output)
    assert v["ok"] is True and v["out_dir"] == f"s3://{BUCKET}/read-builds/s3ex/v1"
    assert v["members_scanned"] == n_files and v["shards_scanned"] == 2
    assert v["clips_scanned"] == v["clips_expected"] == 2 and v["problems"] == []

    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}datasheet.html")
    res = cli("report", "s3ex-v1")
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["out_dir"] == f"s3://{BUCKET}/read-builds/s3ex/v1" and r["totals"]["n_clips"] == 2
    assert f"{prefix}datasheet.html" in _keys(s3, prefix), "the report was written back into the build's folder"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}build.json")["Body"].read())
    assert {f["name"] for f in manifest["files"]} >= {"datasheet.html", "croissant.json", "copyrighted_works.csv"}
    # The transparency page lists the build's documents and serves them from the bucket.
    pytest.importorskip("fastapi", reason="the web UI needs the 'web' extra")
    from fastapi.testclient import TestClient

    from clipfactory.config import load_settings
    from clipfactory.web import WebConfig, create_app

    web = TestClient(create_app(load_settings(cfg), WebConfig()))
    assert "s3ex-v1" in web.get("/transparency").text
    page = web.get("/transparency/s3ex-v1/datasheet")
    assert page.status_code == 200
    assert page.content == s3.get_object(Bucket=BUCKET, Key=f"{prefix}datasheet.html")["Body"].read()
    res = cli("report", "s3ex-v1", "--out", str(tmp_path / "docs"))
    assert res.exit_code == 0, res.output
    works = (tmp_path / "docs" / "copyrighted_works.csv").read_text().splitlines()
    assert len(works) == 2  # the header and the one work of the build
    res = cli("audit", "s3ex-v1")
    assert res.exit_code == 0, res.output
    a = json.loads(res.output)
    assert a["build_id"] == "s3ex-v1" and a["n_clips"] == 2
    assert sum(row["clips"] for row in a["dimensions"]["dataset"]) == 2

    # One shard deleted from the bucket: the build was not read whole, so it is not clean.
    s3.delete_object(Bucket=BUCKET, Key=shards[0])
    res = cli("verify", "--build", "s3ex-v1")
    assert res.exit_code == 1, res.output
    v = json.loads(res.output)
    assert v["ok"] is False and v["missing_shards"] == [shards[0].rsplit("/", 1)[-1]]
    assert v["clips_scanned"] == 1 and len(v["missing_members"]) == 1
    res = runner.invoke(app, ["verify", "--build", "s3ex-v1", "--config", str(cfg)])
    assert res.exit_code == 1 and "s3ex-v1: clean" not in res.output and "s3ex-v1: NOT VERIFIED" in res.output, res.output

    # No build.json in the bucket: verify fails, report and audit say so in one line.
    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}build.json")
    res = cli("verify", "--build", "s3ex-v1")
    assert res.exit_code == 1 and json.loads(res.output)["ok"] is False
    for cmd in ("report", "audit"):
        res = runner.invoke(app, [cmd, "s3ex-v1", "--config", str(cfg)])
        assert res.exit_code == 1, res.output
        text = " ".join(res.output.split())
        assert text.startswith(f"error: s3ex-v1: the build's folder s3://{BUCKET}/read-builds/s3ex/v1 has no build.json"), text


def test_a_takedown_rewrites_a_build_on_s3(s3, tmp_path, monkeypatch):
    """A takedown of one of a build's two sources: the new version is written in the bucket without it,
    the old version's shard that held it is deleted from the bucket, and verify reads both from there."""
    from typer.testing import CliRunner

    from clipfactory.catalog import Catalog
    from clipfactory.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    cfg = _build_on_s3(runner, tmp_path, "td", "td-builds", {"a.mp4": [("bars", 1.0)], "b.mp4": [("checker", 1.0)]})
    cat = Catalog(tmp_path / "cat.duckdb")
    members = cat.query("SELECT clip_id, source_id, shard FROM build_members WHERE build_id = 'td-v1' ORDER BY clip_id")
    assert len({m["source_id"] for m in members}) == 2 and len(members) == 2
    gone, kept = members[0], members[1]
    res = runner.invoke(app, ["takedown", gone["source_id"], "--reason", "test", "--yes", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    receipt = json.loads(res.output)
    assert receipt["builds"][0]["new_out_dir"] == f"s3://{BUCKET}/td-builds/td/v2"
    v1, v2 = set(_keys(s3, "td-builds/td/v1/")), set(_keys(s3, "td-builds/td/v2/"))
    assert f"td-builds/td/v1/{gone['shard']}" not in v1 and f"td-builds/td/v1/{kept['shard']}" in v1
    assert [k for k in v2 if k.endswith(".tar")] == [f"td-builds/td/v2/{kept['shard']}"]
    _, clips = _tar_members(s3, [f"td-builds/td/v2/{kept['shard']}"])
    assert clips == {kept["clip_id"]}
    old = json.loads(s3.get_object(Bucket=BUCKET, Key="td-builds/td/v1/build.json")["Body"].read())
    assert old["status"] == "superseded" and old["removed_shards"] == [gone["shard"]]
    assert not any(p.name.startswith("s3:") for p in tmp_path.iterdir()), "nothing written to a local s3:/ folder"
    for build, n in (("td-v2", 1), ("td-v1", 1)):
        res = runner.invoke(app, ["verify", "--build", build, "--config", str(cfg), "--json"])
        assert res.exit_code == 0, res.output
        v = json.loads(res.output)
        assert v["ok"] and v["clips_scanned"] == v["clips_expected"] == n, v
