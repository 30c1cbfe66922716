"""Takedown cascade, tombstones, receipts, verify, the queue, resume after an interruption, and the CLI."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from media_synth import transform
from typer.testing import CliRunner

from clipfactory.cli.app import app
from clipfactory.errors import NotFoundError
from clipfactory.fingerprints import takedown as td
from clipfactory.fingerprints.index import index_catalog
from clipfactory.fingerprints.lookup import lookup
from clipfactory.fingerprints.takedown import explain_section, process_queue, takedown
from clipfactory.fingerprints.tombstones import is_tombstoned, tombstone_match
from clipfactory.fingerprints.verify import verify_build
from clipfactory.media.analyse import analyse
from clipfactory.storage import BlobStore

from .conftest import add_source, write_test_build

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _made_once(tmp_path_factory, name: str, make) -> dict:
    """``make(catalog, store, builds)`` run once per module in a folder of its own, which :func:`_copied`
    copies for each test (the tests take sources down, so each needs its own catalog, store and builds)."""
    from clipfactory.catalog import Catalog
    from clipfactory.catalog.db import close_idle_connections

    root = tmp_path_factory.mktemp(name)
    made = make(Catalog(root / "catalog.duckdb"), BlobStore(root / "store"), root / "builds")
    close_idle_connections()  # the catalog file is complete on disk before it is copied
    return {"root": root, "made": made}


def _copied(template: dict, catalog, tmp_path: Path) -> tuple[BlobStore, dict]:
    """The template's catalog, store and builds copied to ``catalog``'s file and ``tmp_path``; the build
    folder that the ``builds`` rows and each ``build.json`` name is the copy's. The records the template's
    ``make`` returned come with it."""
    import copy
    import shutil

    from clipfactory.catalog.db import close_idle_connections

    root = template["root"]
    close_idle_connections()
    for f in root.glob("catalog.duckdb*"):
        if not f.name.endswith(".lock"):
            shutil.copy2(f, catalog.path.with_name(catalog.path.name + f.name[len("catalog.duckdb") :]))
    for name in ("store", "builds"):
        shutil.copytree(root / name, tmp_path / name, symlinks=True)
    old, new = str(root / "builds"), str(tmp_path / "builds")
    with catalog.write() as con:
        con.execute("UPDATE builds SET out_dir = replace(out_dir, ?, ?)", [old, new])
    for p in (tmp_path / "builds").rglob("build.json"):
        manifest = json.loads(p.read_text())
        manifest["out_dir"] = manifest["out_dir"].replace(old, new)
        p.write_text(json.dumps(manifest))
    made = copy.deepcopy(template["made"])
    if isinstance(made.get("build"), dict):
        made["build"]["out_dir"] = made["build"]["out_dir"].replace(old, new)
    return BlobStore(tmp_path / "store"), made


@pytest.fixture(scope="module")
def _world_made(tmp_path_factory, synth_dir):
    def make(catalog, store, builds):
        a, a_clips = add_source(
            catalog, store, synth_dir / "A.mp4", url="https://example.org/a", uploader="alice"
        )
        b, b_clips = add_source(catalog, store, synth_dir / "B.mp4", url="https://example.org/b", uploader="bob")
        c, c_clips = add_source(catalog, store, synth_dir / "C.mp4", uploader="carol")
        build = write_test_build(catalog, store, builds, a_clips + b_clips + c_clips, shard_size=2)
        index_catalog(catalog, store)
        return {"a": (a, a_clips), "b": (b, b_clips), "c": (c, c_clips), "build": build}

    return _made_once(tmp_path_factory, "world", make)


@pytest.fixture
def world(catalog, tmp_path, synth_dir, _world_made):
    """Sources A (URL, uploader alice), B (URL, bob) and C (carol) with 3 s clips, a build ``b-v1`` of
    all their clips and the fingerprint index: made once per module, copied for each test."""
    store, made = _copied(_world_made, catalog, tmp_path)
    return {
        "store": store,
        **made,
        "builds": tmp_path / "builds",
        "synth": synth_dir,
        "tmp": tmp_path,
    }


def _analysis_of(path: Path):
    """``analyse(path)`` of a file the world holds: the analysis its ``add_source`` used, made once per
    test run (tests/fingerprints/conftest.py), not computed again."""
    import hashlib

    from .conftest import _analysed

    return _analysed(path, hashlib.sha256(path.read_bytes()).hexdigest())


def _rows_of(catalog, source_id: str, clip_ids: list[str]) -> dict[str, int]:
    """Rows left anywhere in the catalog that name the source or its clips."""
    out = {}
    with catalog.read() as con:
        cols = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE column_name IN ('source_id', 'clip_id')"
        ).fetchall()
    for table, col in cols:
        if table in ("tombstones", "tombstone_hashes", "takedowns", "takedown_queue", "latest_outcomes"):
            continue
        ids = [source_id] if col == "source_id" else clip_ids
        n = catalog.scalar(f'SELECT count(*) FROM "{table}" WHERE "{col}" IN (SELECT unnest(?))', [ids])
        if n:
            out[f"{table}.{col}"] = n
    return out


def _members(shard_dir: Path) -> set[str]:
    keys = set()
    for p in shard_dir.glob("*.tar"):
        with tarfile.open(p) as t:
            keys |= {m.name.split(".")[0] for m in t}
    return keys


def test_takedown_cascade_end_to_end(catalog, world):
    store = world["store"]
    a, a_clips = world["a"]
    a_ids = [c.clip_id for c in a_clips]
    blob_paths = [store.path_of(u) for u in {a.blob_uri, a.fingerprint_uri, *(c.blob_uri for c in a_clips)}]
    receipt = takedown(catalog, store=store, source_id=a.source_id, reason="rights holder request")
    # receipt: what was removed, with hashes, times and the superseded build
    assert receipt["status"] == "done" and receipt["source_ids"] == [a.source_id]
    assert {c["clip_id"] for c in receipt["removed"]["clips"]} == set(a_ids)
    assert receipt["removed"]["tables"]["clips"] == 3 and receipt["removed"]["index_frames"] >= 9
    assert {m["clip_id"] for m in receipt["removed"]["build_members"]} == set(a_ids)
    assert receipt["builds"][0]["superseded"] == "b-v1" and receipt["builds"][0]["new_build_id"] == "b-v2"
    assert all(len(h["sha256"]) == 64 for h in receipt["hashes"])
    assert {"plan", "tombstone", "builds", "catalog", "blobs", "index"} <= set(receipt["steps"])
    stored = json.loads(Path(receipt["receipt_path"]).read_text())
    assert stored["takedown_id"] == receipt["takedown_id"]
    # catalog and blobs: nothing derived from the source is left
    assert _rows_of(catalog, a.source_id, a_ids) == {}
    assert not any(p.exists() for p in blob_paths)
    # builds: a new version without the members; the old version's affected shards are gone
    rows = {
        r["build_id"]: r
        for r in catalog.query("SELECT build_id, status, n_clips, supersedes, out_dir FROM builds")
    }
    assert rows["b-v1"]["status"] == "superseded"
    assert rows["b-v2"]["supersedes"] == "b-v1" and rows["b-v2"]["n_clips"] == 6
    new_dir = Path(rows["b-v2"]["out_dir"])
    assert _members(new_dir) == {c.clip_id for c in world["b"][1] + world["c"][1]}
    assert not (_members(Path(rows["b-v1"]["out_dir"])) & set(a_ids))
    manifest = json.loads((new_dir / "build.json").read_text())
    assert manifest["supersedes"] == "b-v1" and manifest["n_clips"] == 6
    assert {s["name"] for s in manifest["shards"]} == {p.name for p in new_dir.glob("*.tar")}
    assert not list(world["builds"].rglob(".*"))  # no partial files anywhere
    # tombstone: the same or re-encoded content is refused at ingest
    assert is_tombstoned(catalog, source_id=a.source_id)
    assert is_tombstoned(catalog, sha256=a.content_sha256)
    assert is_tombstoned(catalog, sha256=a_clips[1].content_sha256)
    copy = transform(
        world["synth"] / "A.mp4",
        world["tmp"] / "a_reup.mp4",
        codec="mpeg4",
        bit_rate=300_000,
        start_s=2.3,
        end_s=8.3,
        scale=0.5,
    )
    assert is_tombstoned(catalog, pdq_hashes=analyse(copy).pdq)
    assert is_tombstoned(catalog, pdq_hashes=_analysis_of(world["synth"] / "B.mp4").pdq) is None
    assert is_tombstoned(catalog, source_id=world["b"][0].source_id) is None
    # lookup no longer finds it; verify proves the new build is clean
    assert lookup(catalog, world["synth"] / "A.mp4", store=store)["status"] == "no_match"
    assert lookup(catalog, world["synth"] / "B.mp4", store=store)["status"] == "matched"
    v = verify_build(catalog, "b-v2")
    assert v["ok"] and v["members_scanned"] == 18 and v["frames_checked"] > 0
    assert verify_build(catalog, "b")["build_id"] == "b-v2"
    # explain
    with catalog.read() as con:
        ex = explain_section(con, a.source_id)
        assert explain_section(con, world["b"][0].source_id) is None
    assert ex["tombstoned"] and ex["takedowns"][0]["takedown_id"] == receipt["takedown_id"]
    # explaining the source now names the takedown that removed it, not "no such source"
    from clipfactory.errors import NotFoundError
    from clipfactory.explain import explain_source

    with pytest.raises(NotFoundError, match=f"taken down by {receipt['takedown_id']} on "):
        explain_source(catalog, a.source_id)
    # running it again answers with the same receipt
    again = takedown(catalog, store=store, source_id=a.source_id)
    assert again["status"] == "already_done" and again["takedown_id"] == receipt["takedown_id"]


def _add_to_shard(path: Path, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    with tarfile.open(path, "w") as t:
        t.addfile(info, io.BytesIO(data))


def test_verify_is_never_clean_for_a_build_it_did_not_read_whole(catalog, world):
    """A build whose shards are not all there is not proven clean: a shard gone, every shard gone (0
    members read of a build that has 9 clips), its folder gone."""
    out_dir = Path(catalog.query("SELECT out_dir FROM builds WHERE build_id = 'b-v1'")[0]["out_dir"])
    shards = sorted(out_dir.glob("*.tar"))
    assert verify_build(catalog, "b-v1", frames_per_clip=0)["ok"]
    shards[0].unlink()
    v = verify_build(catalog, "b-v1", frames_per_clip=0)
    assert not v["ok"] and v["findings"] == [] and v["missing_shards"] == [shards[0].name]
    for p in shards[1:]:
        p.unlink()
    v = verify_build(catalog, "b-v1", frames_per_clip=0)
    assert not v["ok"] and v["members_scanned"] == 0 and v["clips_expected"] == 9
    assert len(v["missing_members"]) == 9
    res = CliRunner().invoke(app, ["verify", "--build", "b-v1", "--catalog", str(catalog.path), "--frames", "0"])
    assert res.exit_code == 1 and "b-v1: clean" not in res.output and "b-v1: NOT VERIFIED" in res.output, res.output
    (out_dir / "build.json").unlink()
    v = verify_build(catalog, "b-v1", frames_per_clip=0)
    assert not v["ok"] and any("no build.json" in p for p in v["problems"])


def test_verify_fails_when_tombstoned_content_is_re_added(catalog, world):
    store = world["store"]
    a, a_clips = world["a"]
    exact = store.path_of(a_clips[0].blob_uri).read_bytes()  # the clip file as shipped, before the takedown
    takedown(catalog, store=store, source_id=a.source_id)
    new_dir = Path(catalog.query("SELECT out_dir FROM builds WHERE build_id = 'b-v2'")[0]["out_dir"])
    extra = new_dir / "shard-000099.tar"
    runner = CliRunner()
    cli = ["verify", "--build", "b-v2", "--json", "--catalog", str(catalog.path), "--store", str(store.root)]
    # 1. a re-encoded, resized copy of a removed clip under an innocent-looking key: found by PDQ
    reenc = transform(
        world["synth"] / "A.mp4",
        world["tmp"] / "x.mp4",
        start_s=3.0,
        end_s=6.0,
        codec="mpeg4",
        bit_rate=400_000,
        scale=0.5,
    )
    _add_to_shard(extra, "innocent.mp4", reenc.read_bytes())
    v = verify_build(catalog, "b-v2")
    assert not v["ok"] and [f["kind"] for f in v["findings"]] == ["pdq"]
    assert v["findings"][0]["source_id"] == a.source_id
    res = runner.invoke(app, cli)
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False
    # 2. the exact clip file: found by its sha256 even without decoding
    _add_to_shard(extra, "k2.mp4", exact)
    v = verify_build(catalog, "b-v2", frames_per_clip=0)
    assert [f["kind"] for f in v["findings"]] == ["sha256"]
    # 3. a metadata member that names the source
    _add_to_shard(extra, "k3.json", json.dumps({"source_id": a.source_id}).encode())
    v = verify_build(catalog, "b-v2", frames_per_clip=0)
    assert [f["kind"] for f in v["findings"]] == ["json_source_id"]
    extra.unlink()
    assert runner.invoke(app, cli).exit_code == 0


@pytest.mark.parametrize("fail_at", ["tombstone", "builds", "catalog", "mid_shard"])
def test_interrupted_takedown_resumes(catalog, world, monkeypatch, fail_at):
    store = world["store"]
    a, a_clips = world["a"]

    class Boom(RuntimeError):
        pass

    if fail_at == "mid_shard":
        calls = {"n": 0}
        real = td._rewrite_shard

        def flaky(src, dst, removed):
            calls["n"] += 1
            if calls["n"] == 2:
                raise Boom("disk full")
            return real(src, dst, removed)

        monkeypatch.setattr(td, "_rewrite_shard", flaky)
    else:

        def checkpoint(step, tid):
            if step == fail_at:
                raise Boom(f"killed after {step}")

        monkeypatch.setattr(td, "_checkpoint", checkpoint)
    with pytest.raises(Boom):
        takedown(catalog, store=store, source_id=a.source_id, reason="r")
    row = catalog.query("SELECT status, error FROM takedowns")[0]
    assert row["status"] == "failed" and "Boom" in row["error"]
    monkeypatch.undo()
    receipt = takedown(catalog, store=store, source_id=a.source_id, reason="r")
    assert receipt["status"] == "done"
    assert _rows_of(catalog, a.source_id, [c.clip_id for c in a_clips]) == {}
    assert not list(world["builds"].rglob(".*")), "no orphan or partial files"
    assert not list(store.root.rglob("*.part"))
    assert [r["build_id"] for r in catalog.query("SELECT build_id FROM builds ORDER BY version")] == [
        "b-v1",
        "b-v2",
    ]
    assert verify_build(catalog, "b-v2")["ok"]
    assert len(catalog.query("SELECT * FROM takedowns")) == 1
    assert is_tombstoned(catalog, source_id=a.source_id)


def test_takedown_by_url_uploader_and_match(catalog, world):
    store = world["store"]
    r = takedown(catalog, store=store, url="https://example.org/b")
    assert r["source_ids"] == [world["b"][0].source_id]
    r = takedown(catalog, store=store, uploader="carol")
    assert r["source_ids"] == [world["c"][0].source_id]
    copy = transform(
        world["synth"] / "A.mp4", world["tmp"] / "a_copy.mp4", scale=0.5, codec="mpeg4", bit_rate=400_000
    )
    r = takedown(catalog, store=store, match=copy, reason="found by fingerprint")
    assert r["source_ids"] == [world["a"][0].source_id]
    assert r["requested"]["kind"] == "match" and r["requested"]["matches"][0]["confidence"] >= 0.5
    # three takedowns, three build versions
    assert catalog.scalar("SELECT max(version) FROM builds") == 4
    assert catalog.scalar("SELECT n_clips FROM builds WHERE version = 4") == 0


def test_unknown_targets_are_clear_errors(catalog, world):
    store = world["store"]
    with pytest.raises(NotFoundError, match="no source with id"):
        takedown(catalog, store=store, source_id="youtube:doesnotexis")
    with pytest.raises(NotFoundError):
        takedown(catalog, store=store, url="https://example.org/nothing")
    with pytest.raises(NotFoundError):
        takedown(catalog, store=store, uploader="mallory")
    with pytest.raises(NotFoundError, match="no catalog footage matches"):
        takedown(catalog, store=store, match=world["synth"] / "D.mp4")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "takedown",
            "youtube:doesnotexis",
            "--yes",
            "--catalog",
            str(catalog.path),
            "--store",
            str(store.root),
        ],
    )
    assert res.exit_code == 1 and "no source with id" in res.output
    res = runner.invoke(app, ["takedown", "--catalog", str(catalog.path)])
    assert res.exit_code == 1 and "exactly one" in res.output


def test_queue_feeds_takedown(catalog, world):
    store = world["store"]
    c = world["c"][0]
    with catalog.write() as con:
        con.execute(
            "INSERT INTO takedown_queue (source_id, reason, evidence, queued_at, status) VALUES "
            "(?, 'creator request', '{}', now(), 'pending'), ('youtube:unknownxxxx', 'x', '{}', now(), 'pending')",
            [c.source_id],
        )
    out = process_queue(catalog, store=store)
    assert out["processed"] == 2 and out["rejected"] == ["youtube:unknownxxxx"]
    assert out["receipts"][0]["source_ids"] == [c.source_id]
    assert out["receipts"][0]["reason"] == "creator request"
    st = {r["source_id"]: r["status"] for r in catalog.query("SELECT source_id, status FROM takedown_queue")}
    assert st == {c.source_id: "done", "youtube:unknownxxxx": "rejected"}
    assert process_queue(catalog, store=store)["processed"] == 0


def test_cli_json(catalog, world):
    store = world["store"]
    runner = CliRunner()
    base = ["--catalog", str(catalog.path), "--store", str(store.root)]
    res = runner.invoke(app, ["lookup", str(world["synth"] / "B.mp4"), "--json", *base])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "matched" and data["matches"][0]["source_id"] == world["b"][0].source_id
    assert data["builds"][0]["build_id"] == "b-v1"
    res = runner.invoke(app, ["dedup", "--json", "--dry-run", *base])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["dropped"] == 0
    res = runner.invoke(app, ["fingerprints", "status", "--json", *base])
    assert json.loads(res.stdout)["up_to_date"] is True
    res = runner.invoke(
        app, ["takedown", world["b"][0].source_id, "--reason", "test", "--yes", "--json", *base]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["status"] == "done" and r["builds"][0]["new_build_id"] == "b-v2"
    res = runner.invoke(app, ["verify", "--build", "b-v2", "--json", *base])
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] is True
    res = runner.invoke(app, ["lookup", str(world["tmp"] / "nothing.txt"), *base])
    assert res.exit_code == 1


def test_tombstone_match_details(catalog, world):
    store = world["store"]
    a = world["a"][0]
    takedown(catalog, store=store, source_id=a.source_id)
    m = tombstone_match(catalog, pdq_hashes=_analysis_of(world["synth"] / "A.mp4").pdq)
    assert m.kind == "pdq" and m.source_id == a.source_id and m.share >= 0.8
    assert tombstone_match(catalog, pdq_hashes=[]) is None


# -- dry run, confirmation, segment scope, dedup copies: on real footage ----------------------------------
def _excerpt(src: Path, dst: Path, start_s: float, end_s: float, width: int = 320) -> Path:
    """Seconds ``start_s``..``end_s`` of ``src``, downscaled to ``width`` pixels (seeks, so only the part
    is decoded)."""
    from fractions import Fraction

    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        tb = float(vs.time_base)
        first_pts = vs.start_time or 0
        inp.seek(first_pts + int(start_s / tb), stream=vs)
        rate = Fraction(vs.average_rate).limit_denominator(1001)
        height = int(round(vs.codec_context.height * width / vs.codec_context.width / 2)) * 2
        st = out.add_stream("libx264", rate=rate)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.options = {"preset": "ultrafast"}
        n = 0
        for f in inp.decode(vs):
            t = (f.pts - first_pts) * tb
            if t < start_s - 1e-6:
                continue
            if t >= end_s - 1e-6:
                break
            g = f.reformat(width=width, height=height, format="yuv420p")
            g.pts, g.time_base = n, Fraction(1, 1) / rate
            n += 1
            for pkt in st.encode(g):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return dst


#: bbb_5s.mp4 is seconds 24.7-30.0 of trailer_bbb.mp4 (the Big Buck Bunny trailer); the source below is
#: seconds 18-36 of the trailer, so the excerpt is its seconds 6.7-12.0.
TRAILER_FROM_S = 18.0


@pytest.fixture(scope="session")
def real_media(tmp_path_factory, shared_data) -> dict[str, Path]:
    media = shared_data / "media"
    d = tmp_path_factory.mktemp("real")
    # The 720p trailer and excerpt are downscaled to 320 pixels wide so that decoding them is cheap.
    return {
        "trailer": _excerpt(media / "trailer_bbb.mp4", d / "trailer_18_36.mp4", TRAILER_FROM_S, 36.0),
        "excerpt": _excerpt(media / "bbb_5s.mp4", d / "bbb_5s.mp4", 0.0, 60.0),
        "bikes": media / "bikes.mp4",
        "bikes_copy": transform(media / "bikes.mp4", d / "bikes_copy.mp4", scale=0.5, codec="mpeg4"),
    }


@pytest.fixture(scope="module")
def _real_world_made(tmp_path_factory, real_media):
    def make(catalog, store, builds):
        t, t_clips = add_source(
            catalog, store, real_media["trailer"], url="https://example.org/trailer", uploader="blender"
        )
        b, b_clips = add_source(catalog, store, real_media["bikes"], uploader="cyclist")
        write_test_build(catalog, store, builds, t_clips + b_clips, shard_size=2)
        index_catalog(catalog, store)
        return {"t": (t, t_clips), "b": (b, b_clips)}

    return _made_once(tmp_path_factory, "real_world", make)


@pytest.fixture
def real_world(catalog, tmp_path, real_media, _real_world_made):
    """The trailer excerpt (URL, uploader blender) and bikes.mp4 (cyclist) with 3 s clips, a build
    ``b-v1`` of their clips and the fingerprint index: made once per module, copied for each test."""
    store, made = _copied(_real_world_made, catalog, tmp_path)
    return {"store": store, **made, "tmp": tmp_path, "media": real_media}


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes (the catalog closed first: a connection of
    this process lingers after its block, with the write-ahead log beside the file)."""
    import hashlib

    from clipfactory.catalog.db import close_idle_connections

    close_idle_connections()
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(catalog, store, *args):
    return CliRunner().invoke(
        app, ["takedown", *map(str, args), "--catalog", str(catalog.path), "--store", str(store.root)]
    )


def test_dry_run_changes_nothing_and_lists_what_a_run_removes(catalog, real_world):
    store, tmp = real_world["store"], real_world["tmp"]
    t, t_clips = real_world["t"]
    excerpt = real_world["media"]["excerpt"]
    before = _snapshot(tmp)
    res = _cli(catalog, store, t.source_id, "--dry-run", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "dry_run"
    assert _snapshot(tmp) == before
    # A match searches the fingerprint index as `clipfactory lookup` does, which builds its search cache
    # under <store>/index on first use: the creator's lookup comes first.
    assert lookup(catalog, excerpt, store=store)["status"] == "matched"
    before = _snapshot(tmp)
    res = _cli(catalog, store, "--match", excerpt, "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    res = _cli(catalog, store, "--match", excerpt, "--dry-run")  # the rendering for people
    assert res.exit_code == 0 and "would remove" in res.output and "nothing was changed" in res.output
    assert _snapshot(tmp) == before, "a dry run changes no catalog, store or build file"
    assert plan["status"] == "dry_run" and plan["scope"] == "source"
    rm = plan["would_remove"]
    # The 5 s excerpt names the trailer source: all of it goes in a source takedown.
    assert [s["source_id"] for s in rm["sources"]] == [t.source_id]
    assert {c["clip_id"] for c in rm["clips"]} == {c.clip_id for c in t_clips}
    assert {m["clip_id"] for m in rm["build_members"]} == {c.clip_id for c in t_clips}
    assert rm["tables"]["clips"] == len(t_clips) == 6
    assert plan["builds"][0]["build_id"] == "b-v1" and plan["builds"][0]["new_build_id"] == "b-v2"
    # The run removes exactly what the plan listed.
    r = takedown(catalog, store=store, match=excerpt)
    got = r["removed"]
    assert r["takedown_id"] == plan["takedown_id"]
    assert [s["source_id"] for s in got["sources"]] == [s["source_id"] for s in rm["sources"]]
    assert got["clips"] == rm["clips"]
    assert got["tables"] == rm["tables"] and got["catalog_rows"] == rm["catalog_rows"]
    assert got["index_frames"] == rm["index_frames"]
    assert {b["uri"] for b in got["blobs"] if b["deleted"]} == {b["uri"] for b in rm["blobs"]}
    assert {b["uri"] for b in got["blobs"] if not b["deleted"]} == {b["uri"] for b in plan["blobs_kept"]}
    assert got["build_members"] == rm["build_members"]
    assert [f["path"] for f in got["shard_files"]] == [f["path"] for f in rm["shard_files"]]
    assert [b["new_build_id"] for b in r["builds"]] == [b["new_build_id"] for b in plan["builds"]]
    # the source's media and its clips' files are among the blobs removed, and b-v1's shards holding them go
    assert {t.blob_uri, *(c.blob_uri for c in t_clips)} <= {b["uri"] for b in rm["blobs"]}
    assert rm["shard_files"]
    assert not any(store.exists(b["uri"]) for b in rm["blobs"])
    assert not any(Path(f["path"]).exists() for f in rm["shard_files"])
    # After the takedown a dry run of the same request finds nothing left to remove.
    again = _cli(catalog, store, t.source_id, "--dry-run", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "already_done"


def test_cli_asks_before_removing_and_refuses_without_a_terminal(catalog, real_world, monkeypatch):
    from clipfactory.cli import fingerprint as cli_fp

    store, tmp = real_world["store"], real_world["tmp"]
    b = real_world["b"][0]
    before = _snapshot(tmp)
    res = _cli(catalog, store, b.source_id)  # stdin is no terminal under the test runner
    assert res.exit_code == 1
    assert "--yes" in res.output and "--dry-run" in res.output and b.source_id in res.output
    assert _snapshot(tmp) == before
    monkeypatch.setattr(cli_fp, "_stdin_is_terminal", lambda: True)
    res = CliRunner().invoke(
        app,
        ["takedown", b.source_id, "--catalog", str(catalog.path), "--store", str(store.root)],
        input="n\n",
    )
    assert res.exit_code == 1 and "Remove all of this?" in res.output and "would remove" in res.output
    assert _snapshot(tmp) == before, "answering no removes nothing"
    res = CliRunner().invoke(
        app,
        ["takedown", b.source_id, "--catalog", str(catalog.path), "--store", str(store.root)],
        input="y\n",
    )
    assert res.exit_code == 0, res.output
    assert not catalog.query("SELECT 1 FROM sources WHERE source_id = ?", [b.source_id])
    assert catalog.scalar("SELECT status FROM takedowns") == "done"
    # --yes: no question; a script gets the receipt
    c = real_world["t"][0]
    res = _cli(catalog, store, c.source_id, "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["removed"]["sources"][0]["source_id"] == c.source_id
    # --scope segment needs --match
    res = _cli(catalog, store, c.source_id, "--scope", "segment", "--yes")
    assert res.exit_code == 1 and "--match" in res.output


def _overlaps(c, ranges) -> bool:
    return any(c.start_ms < hi and lo < c.end_ms for lo, hi in ranges)


def test_segment_scope_removes_only_the_matched_clips(catalog, real_world):
    store = real_world["store"]
    t, t_clips = real_world["t"]
    b, b_clips = real_world["b"]
    excerpt = real_world["media"]["excerpt"]
    with pytest.raises(Exception, match="--match"):
        takedown(catalog, store=store, source_id=t.source_id, scope="segment")
    plan = takedown(catalog, store=store, match=excerpt, scope="segment", dry_run=True)
    r = takedown(catalog, store=store, match=excerpt, scope="segment", reason="creator: 5 s excerpt")
    assert r["scope"] == "segment" and r["source_ids"] == [t.source_id]
    ranges = r["segments"][t.source_id]
    # the excerpt is source seconds 6.7-12.0: its clips go, those well away from it stay
    by_start = {c.start_ms: c for c in t_clips}
    removed = {c["clip_id"] for c in r["removed"]["clips"]}
    assert {by_start[6000].clip_id, by_start[9000].clip_id} <= removed
    assert not removed & {by_start[0].clip_id, by_start[15000].clip_id}
    assert removed == {c.clip_id for c in t_clips if _overlaps(c, ranges)}
    assert r["removed"]["clips"] == plan["would_remove"]["clips"]
    assert r["removed"]["tables"] == plan["would_remove"]["tables"]
    assert r["removed"]["build_members"] == plan["would_remove"]["build_members"]
    assert {x["uri"] for x in r["removed"]["blobs"] if x["deleted"]} == {
        x["uri"] for x in plan["would_remove"]["blobs"]
    }
    kept = [c for c in t_clips if c.clip_id not in removed]
    # the source, its media and its other clips stay
    assert r["removed"]["sources"] == [] and r["removed"]["tables"].get("sources") is None
    assert catalog.scalar("SELECT count(*) FROM sources WHERE source_id = ?", [t.source_id]) == 1
    assert store.exists(t.blob_uri)
    left = {
        x["clip_id"] for x in catalog.query("SELECT clip_id FROM clips WHERE source_id = ?", [t.source_id])
    }
    assert left == {c.clip_id for c in kept}
    assert all(store.exists(c.blob_uri) for c in kept)
    assert not any(store.exists(t_clips[[c.clip_id for c in t_clips].index(x)].blob_uri) for x in removed)
    # the build's new version ships everything but the removed clips
    new_dir = Path(catalog.query("SELECT out_dir FROM builds WHERE build_id = 'b-v2'")[0]["out_dir"])
    assert _members(new_dir) == {c.clip_id for c in kept + b_clips}
    # the tombstone holds the matched footage only: not the source id, not its bytes
    assert is_tombstoned(catalog, source_id=t.source_id) is None
    assert is_tombstoned(catalog, sha256=t.content_sha256) is None
    removed_clip = by_start[9000]
    assert is_tombstoned(catalog, sha256=removed_clip.content_sha256)
    assert all(is_tombstoned(catalog, sha256=c.content_sha256) is None for c in kept)
    assert is_tombstoned(catalog, pdq_hashes=analyse(excerpt).pdq), "a re-upload of the excerpt is refused"
    assert is_tombstoned(catalog, pdq_hashes=analyse(store.path_of(by_start[0].blob_uri)).pdq) is None
    (tomb,) = r["tombstones"]
    assert tomb["scope"] == "segment" and tomb["ranges"] == ranges and tomb["n_pdq"] > 0
    assert verify_build(catalog, "b-v2")["ok"]
    # the source media still holds the footage, but no clip of it is left
    answer = lookup(catalog, excerpt, store=store)
    m = answer["matches"]
    assert [x["source_id"] for x in m] == [t.source_id] and m[0]["clips"] == []
    # and the answer names the takedown that removed the segment from the builds
    assert answer["removed"] and answer["removed"]["takedown_id"] == r["takedown_id"]
    assert answer["removed"]["tombstone_id"] == tomb["tombstone_id"]


def test_receipt_lists_the_copies_dedup_linked(catalog, real_world):
    from clipfactory.fingerprints.dedup import find_near_duplicates

    store = real_world["store"]
    b, b_clips = real_world["b"]
    copy, copy_clips = add_source(catalog, store, real_world["media"]["bikes_copy"], uploader="reposter")
    out = find_near_duplicates(catalog, store)
    # the re-encoded half-size copy is dropped in favour of the original (larger picture)
    dropped = {x["clip_id"]: x["kept"] for g in out["groups"] for x in g["dropped"]}
    assert copy_clips and set(dropped) == {c.clip_id for c in copy_clips}
    assert set(dropped.values()) <= {c.clip_id for c in b_clips}
    # taking down the copy: dedup kept the original instead of it, and builds still ship it
    plan = takedown(catalog, store=store, source_id=copy.source_id, dry_run=True)
    kept = plan["dedup_copies"]
    assert {(x["clip_id"], x["removed_clip_id"]) for x in kept} == {(k, d) for d, k in dropped.items()}
    assert all(x["dedup_status"] == "kept" and x["source_id"] == b.source_id for x in kept)
    assert plan["orphaned_duplicates"] == []
    # taking down the original: the copy's clips, dropped in its favour, are orphaned
    r = takedown(catalog, store=store, source_id=b.source_id)
    orphans = r["dedup_copies"]
    assert {(x["clip_id"], x["removed_clip_id"]) for x in orphans} == set(dropped.items())
    assert all(x["dedup_status"] == "dropped" and x["source_id"] == copy.source_id for x in orphans)
    assert all(x["removed_source_id"] == b.source_id and x["share"] >= 0.8 for x in orphans)
    assert r["orphaned_duplicates"] == sorted(dropped)
    stored = json.loads(Path(r["receipt_path"]).read_text())
    assert stored["dedup_copies"] == orphans


def test_documented_takedown_commands_work(catalog, real_world):
    """Every ``clipfactory takedown`` line of docs/takedown.md runs (as a dry run); the example files are
    the excerpt, the example ids and URLs are unknown to this catalog and answer with a clear error."""
    import shlex

    doc = Path(__file__).resolve().parents[2] / "docs" / "takedown.md"
    lines = [
        ln.split("  #")[0].strip()
        for ln in doc.read_text().splitlines()
        if ln.strip().startswith("clipfactory takedown")
    ]
    assert len(lines) >= 10
    store, excerpt = real_world["store"], real_world["media"]["excerpt"]
    for ln in lines:
        args = [str(excerpt) if a.endswith(".mp4") else a for a in shlex.split(ln)[2:]]
        res = _cli(catalog, store, *args, "--dry-run", "--json")
        if "--match" in args or "--queue" in args:
            assert res.exit_code == 0, f"{ln}: {res.output}"
            assert json.loads(res.stdout)["status"] == "dry_run", ln
        else:
            assert res.exit_code == 1 and "no source" in res.output, f"{ln}: {res.output}"


def test_lookup_index_count_excludes_taken_down_sources(catalog, world):
    store = world["store"]
    before = lookup(catalog, world["synth"] / "B.mp4", store=store)["index"]["sources"]
    assert before == 3  # the world holds three sources
    takedown(catalog, store=store, source_id=world["a"][0].source_id, reason="test")
    after = lookup(catalog, world["synth"] / "B.mp4", store=store)
    assert after["index"]["sources"] == 2
    assert index_catalog(catalog, store)["sources"] == 2  # so does the index's own report
    res = CliRunner().invoke(
        app, ["lookup", str(world["synth"] / "B.mp4"), "--catalog", str(catalog.path), "--store", str(store.root)]
    )
    assert "of 2 sources" in res.output, res.output


def test_superseding_build_counts_describe_the_new_version(catalog, world):
    import pyarrow.parquet as pq

    store = world["store"]
    takedown(catalog, store=store, source_id=world["a"][0].source_id, reason="test")
    row = catalog.query("SELECT n_clips, n_shards, out_dir FROM builds WHERE build_id = 'b-v2'")[0]
    new_dir = Path(row["out_dir"])
    tars = sorted(new_dir.glob("*.tar"))
    keys = _members(new_dir)
    idx = pq.read_table(new_dir / "index.parquet").to_pylist()
    manifest = json.loads((new_dir / "build.json").read_text())
    # independent figures: tar members, and the sources of the clips left (B and C)
    expected_sources = {world["b"][0].source_id, world["c"][0].source_id}
    assert {r["clip_id"] for r in idx} == keys
    assert manifest["n_clips"] == len(keys) == row["n_clips"]
    assert manifest["n_shards"] == len(tars) == row["n_shards"]
    assert manifest["n_sources"] == len(expected_sources) == len({r["source_id"] for r in idx})
    for s in manifest["shards"]:
        with tarfile.open(new_dir / s["name"]) as t:
            assert s["n_clips"] == len({m.name.split(".")[0] for m in t})
