"""The main job end to end: add → policy gate → probe → analyse → cut → quality → build; resume and crashes."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app
from clipfactory.config import Settings
from clipfactory.factory import pipeline
from clipfactory.factory.export import explain_section, write_build
from clipfactory.records import ClipRecord
from clipfactory.storage import BlobStore

ROOT = Path(__file__).resolve().parents[2]


def make_settings(tmp_path: Path, inputs: list[Path], **kw) -> Settings:
    return Settings(
        catalog=str(tmp_path / "cat.duckdb"),
        store=str(tmp_path / "store"),
        inputs=[str(p) for p in inputs],
        license="CC-BY-4.0",
        rights_holder="Test Holder",
        purpose=kw.pop("purpose", "commercial"),
        build={"name": "t", "out": str(tmp_path / "builds"), "shard_size": kw.pop("shard_size", 1)},
        **kw,
    )


def new_rows(cat: Catalog, run_id: str) -> dict[str, int]:
    rows = cat.query(
        "SELECT stage, count(*) AS n FROM stage_outcomes WHERE run_id = ? GROUP BY stage", [run_id]
    )
    return {r["stage"]: r["n"] for r in rows}


@pytest.fixture(scope="module")
def _first_run_as_it_ended(tmp_path_factory, media_dir):
    """One first run of the module, and a copy of its folder (catalog, store, builds) as the run left it."""
    from clipfactory.catalog.db import close_idle_connections

    root = tmp_path_factory.mktemp("first_run")
    s = make_settings(root / "run", [media_dir])
    summary = pipeline.run_pipeline(s)
    close_idle_connections()  # the catalog file and its log are complete on disk before they are copied
    shutil.copytree(root / "run", root / "as_it_ended", symlinks=True)
    return s, summary, root / "run", root / "as_it_ended"


@pytest.fixture
def first_run(_first_run_as_it_ended):
    """The catalog, store and builds of a first run over ``media_dir``, as that run left them: the module's
    run is made once and its folder put back, at the same paths (which its catalog and blobs name), before
    each test that changes it."""
    import copy

    from clipfactory.catalog.db import close_idle_connections

    s, summary, run, as_it_ended = _first_run_as_it_ended
    close_idle_connections()  # no connection of this process stays open on the file replaced
    shutil.rmtree(run)
    shutil.copytree(as_it_ended, run, symlinks=True)
    return s, copy.deepcopy(summary)


def test_run_exports_allowed_clips_and_refuses_the_rest(first_run):
    s, summary = first_run
    cat = Catalog(s.catalog)
    st = summary["stages"]
    assert st["acquire.local"]["kept"] == 2
    # b.mp4 is CC-BY-NC-4.0: the gate refuses it for a commercial build. Its bytes are already held, so it
    # is analysed for its fingerprints (to recognise relabelled copies), but none of its clips go on.
    assert st["policy.gate"]["kept"] == 1 and st["policy.gate"]["dropped"] == 1
    [reason] = st["policy.gate"]["reasons"]
    assert reason.startswith("policy.")
    assert st["media.probe"]["kept"] == 2 and st["media.analyse"]["kept"] == 2
    refused_id = next(r["item_id"] for r in cat.query(
        "SELECT item_id FROM stage_outcomes WHERE stage = 'policy.gate' AND status = 'dropped'"))
    assert cat.scalar("SELECT count(*) FROM frame_hashes WHERE source_id = ?", [refused_id]) > 0
    assert not cat.query(
        """SELECT o.item_id FROM stage_outcomes o JOIN clips c ON c.clip_id = o.item_id
           WHERE c.source_id = ? AND o.stage IN ('quality.filter', 'media.cut', 'build.export')""",
        [refused_id],
    )
    # The quality filter runs on the planned clips, so the dropped one is never cut.
    assert st["quality.filter"]["kept"] == 2 and st["quality.filter"]["dropped"] == 1
    assert st["media.cut"]["kept"] == 2
    assert set(st["quality.filter"]["reasons"]) <= {"quality.too_blurry", "quality.static"}
    b = summary["build"]
    assert b["status"] == "complete" and b["n_clips"] == 2 and b["n_shards"] == 2
    out = Path(b["out_dir"])
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["build_id"] == "t-v1" and manifest["purpose"] == "commercial"
    assert manifest["attributions"] == ["“a” by Test Holder (a.mp4), licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Modified: cut into 2 clips."]

    # Shards: per clip an mp4, a json with licence lineage and a jpg; the index and the catalog agree.
    index = pq.read_table(out / "index.parquet").to_pylist()
    members = cat.query("SELECT * FROM build_members WHERE build_id = 't-v1' ORDER BY clip_id")
    assert (
        [r["clip_id"] for r in index]
        == [m["clip_id"] for m in members]
        == sorted(r["clip_id"] for r in index)
    )
    store = BlobStore(s.store)
    for row, member in zip(index, members, strict=True):
        with tarfile.open(out / row["shard"]) as tar:
            names = tar.getnames()
            assert names == [f"{row['key']}.mp4", f"{row['key']}.json", f"{row['key']}.jpg"]
            mp4 = tar.extractfile(f"{row['key']}.mp4").read()
            doc = json.loads(tar.extractfile(f"{row['key']}.json").read())
            assert tar.extractfile(f"{row['key']}.jpg").read()[:2] == b"\xff\xd8"
        clip = cat.query("SELECT * FROM clips WHERE clip_id = ?", [row["clip_id"]])[0]
        assert mp4 == store.path_of(clip["blob_uri"]).read_bytes()
        assert member["mp4_sha256"] == row["mp4_sha256"] == clip["content_sha256"] == doc["sha256"]
        assert doc["clip_id"] == row["clip_id"] and doc["source_id"] == row["source_id"]
        assert doc["span"]["start_ms"] == clip["start_ms"] and doc["cut"]["method"] in ("copy", "reencode")
        lic = doc["license"]
        assert lic["content_license"] == "CC-BY-4.0" and lic["attribution"].startswith("“a” by Test Holder (a.mp4), licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Modified: cut to ")
        assert doc["attribution"]["text"] == lic["attribution"] == row["attribution"]
        assert [x["kind"] for x in lic["lineage"]] == ["content", "platform", "dataset"]
        assert lic["lineage"][2]["dataset"] == "owned"
        assert lic["decision"]["decision"] == "allow"
        assert doc["origin"]["origin_uri"] == row["origin_uri"] == "a.mp4"
    refused = cat.query(
        "SELECT item_id, reason FROM stage_outcomes WHERE stage = 'policy.gate' AND status = 'dropped'"
    )
    assert len(refused) == 1 and refused[0]["reason"].startswith("policy.")
    ex = explain_section_for(cat, index[0]["source_id"])
    assert ex["builds"][0]["build_id"] == "t-v1" and len(ex["builds"][0]["clips"]) == 2
    # The human view of explain: where the owned file came from, and the build as a table row, no raw dicts.
    shown = CliRunner().invoke(app, ["explain", index[0]["source_id"], "--catalog", s.catalog])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    src_row = cat.query("SELECT origin_uri FROM sources WHERE source_id = ?", [index[0]["source_id"]])[0]
    assert f"owned media added from {src_row['origin_uri']}" in text
    assert "licence CC-BY-4.0, rights holder Test Holder" in text
    assert "builds holding this source (2 clips in builds;" in text
    [build_row] = [line for line in text.splitlines() if line.startswith("│ t-v1 ")]
    assert [c.strip() for c in build_row.split("│")[1:5]] == ["t-v1", "commercial", "complete", "2"]
    assert "{'" not in text


def explain_section_for(cat: Catalog, source_id: str):
    with cat.read() as con:
        return explain_section(con, source_id)


def test_a_second_run_does_no_work(first_run):
    s, summary = first_run
    again = pipeline.run_pipeline(s)
    cat = Catalog(s.catalog)
    assert new_rows(cat, again["run_id"]) == {}, "no stage processed anything again"
    assert again["build"]["status"] == "unchanged" and again["build"]["build_id"] == "t-v1"
    assert again["stages"] == summary["stages"]
    assert cat.scalar("SELECT count(*) FROM builds") == 1


def test_the_build_refuses_sources_the_gate_does_not_allow(first_run):
    s, _ = first_run
    cat = Catalog(s.catalog)
    nc = cat.query("SELECT source_id FROM sources WHERE content_license = 'CC-BY-NC-4.0'")[0]["source_id"]
    # A clip of the refused source reaches the exporter anyway: it must not be shipped.
    bad = ClipRecord(
        "f" * 20,
        nc,
        0,
        2000,
        blob_uri=cat.query("SELECT blob_uri FROM clips WHERE blob_uri IS NOT NULL LIMIT 1")[0]["blob_uri"],
    )
    kept = [ClipRecord.from_row(r) for r in cat.query("SELECT * FROM clips WHERE blob_uri IS NOT NULL")]
    manifest = write_build(cat, s, name="other", purpose="commercial", clips=[*kept, bad], run_id="r-test")
    assert "f" * 20 not in [
        m["clip_id"] for m in cat.query("SELECT clip_id FROM build_members WHERE build_id = 'other-v1'")
    ]
    assert [r["source_id"] for r in manifest["refused_sources"]] == [nc]
    row = cat.query(
        "SELECT status, reason FROM stage_outcomes WHERE stage = 'build.export' AND item_id = ?", ["f" * 20]
    )
    assert row[0]["status"] == "dropped" and row[0]["reason"].startswith("policy.")
    # The research profile accepts non-commercial content.
    research = write_build(cat, s, name="research", purpose="research", clips=[*kept, bad])
    assert research["refused_sources"] == [] and research["n_clips"] == len(kept) + 1


def test_a_changed_build_is_a_new_version_that_supersedes(first_run):
    s, summary = first_run
    cat = Catalog(s.catalog)
    kept = [ClipRecord.from_row(r) for r in cat.query("SELECT * FROM clips WHERE blob_uri IS NOT NULL")]
    m = write_build(cat, s, name="t", purpose="commercial", clips=kept[:1], supersedes="t-v1")
    assert m["build_id"] == "t-v2" and m["supersedes"] == "t-v1" and m["n_clips"] == 1
    rows = {r["build_id"]: r["status"] for r in cat.query("SELECT build_id, status FROM builds")}
    assert rows == {"t-v1": "superseded", "t-v2": "complete"}
    assert (Path(summary["build"]["out_dir"]) / "build.json").exists(), "old versions stay on disk"


def test_crash_during_cutting_resumes_without_redoing_finished_work(tmp_path, media_dir, monkeypatch):
    s = make_settings(tmp_path, [media_dir])
    from clipfactory.stages.media import cut as cut_stage

    real = cut_stage.cut_clip
    calls = []

    def dying(*a, **k):
        calls.append(a)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is killed in the middle of the cut stage
        return real(*a, **k)

    monkeypatch.setattr(cut_stage, "cut_clip", dying)
    monkeypatch.setattr(cut_stage.CutStage, "batch_size", 1)  # outcomes are persisted batch by batch
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(s)
    cat = Catalog(s.catalog)
    assert cat.scalar("SELECT status FROM runs") == "interrupted"
    assert not list((tmp_path / "builds").rglob("*.tar"))
    assert not [p for p in BlobStore(s.store).incoming().iterdir()], "no half-written blob"
    monkeypatch.setattr(cut_stage, "cut_clip", real)
    summary = pipeline.run_pipeline(s)
    rows = new_rows(cat, summary["run_id"])
    assert "media.analyse" not in rows and "media.probe" not in rows and "acquire.local" not in rows
    assert rows["media.cut"] == 1, "the clip cut before the crash is not cut again"
    assert summary["build"]["n_clips"] == 2
    per_item = cat.query(
        "SELECT item_id, count(*) AS n FROM stage_outcomes WHERE stage = 'media.analyse' GROUP BY 1"
    )
    assert [r["n"] for r in per_item] == [1, 1]  # the allowed source, and the refused one (fingerprints)


def test_crash_while_writing_a_shard_leaves_no_partial_shard(tmp_path, media_dir, monkeypatch):
    s = make_settings(tmp_path, [media_dir], shard_size=1)
    real = tarfile.TarFile.addfile
    n = {"calls": 0}

    def dying(self, info, fileobj=None):
        n["calls"] += 1
        if n["calls"] == 5:  # inside the second shard
            raise KeyboardInterrupt
        return real(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", dying)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(s)
    out = tmp_path / "builds" / "t" / "v1"
    tars = sorted(p.name for p in out.glob("*.tar"))
    assert tars == ["shard-000000.tar"], "only the finished shard exists under a final name"
    assert not list(out.glob(".*part*")), "the temporary file is removed"
    assert not (out / "build.json").exists()
    cat = Catalog(s.catalog)
    assert cat.scalar("SELECT count(*) FROM builds") == 0
    monkeypatch.setattr(tarfile.TarFile, "addfile", real)
    summary = pipeline.run_pipeline(s)
    assert summary["build"]["build_id"] == "t-v2" and summary["build"]["n_shards"] == 2
    assert set(new_rows(cat, summary["run_id"])) == {"build.export"}


def test_leftovers_of_a_killed_blob_write_are_cleaned(tmp_path, media_dir):
    s = make_settings(tmp_path, [media_dir])
    store = BlobStore(s.store)
    (store.incoming() / ".put.abc.part").write_bytes(b"half a video")
    summary = pipeline.run_pipeline(s)
    assert summary["cleaned_incoming"] == 1
    assert not list(store.incoming().iterdir())


def test_shards_are_deterministic(first_run):
    s, summary = first_run
    cat = Catalog(s.catalog)
    clips = [ClipRecord.from_row(r) for r in cat.query("SELECT * FROM clips WHERE blob_uri IS NOT NULL")]
    kept = cat.query("SELECT clip_id FROM build_members WHERE build_id = 't-v1'")
    again = write_build(
        cat,
        s,
        name="again",
        purpose="commercial",
        clips=[c for c in clips if c.clip_id in {k["clip_id"] for k in kept}][::-1],
    )
    assert [x["sha256"] for x in again["shards"]] == [
        json.loads((Path(summary["build"]["out_dir"]) / "build.json").read_text())["shards"][i]["sha256"]
        for i in range(len(again["shards"]))
    ]


# -- the CLI ------------------------------------------------------------------------------------------------


def test_cli_run_on_the_bundled_example(tmp_path):
    runner = CliRunner()
    args = [
        "run",
        "--config",
        str(ROOT / "examples" / "clipfactory.toml"),
        "--catalog",
        str(tmp_path / "c.duckdb"),
    ]
    args += ["--store", str(tmp_path / "store"), "--set", f"build.out={tmp_path / 'builds'}", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "finished" and data["sources"] == 3
    # Exact counts follow the shot detector; the structure does not.
    assert data["stages"]["media.cut"]["kept"] >= 4
    assert (
        data["build"]["n_clips"]
        == data["stages"]["media.cut"]["kept"]
        == data["stages"]["quality.filter"]["kept"]
    )
    assert data["stages"]["quality.filter"]["dropped"] >= 1
    methods = {r["cut_method"] for r in Catalog(tmp_path / "c.duckdb").query("SELECT cut_method FROM clips")}
    assert methods >= {"copy", "reencode"}
    out = Path(data["build"]["out_dir"])
    index = pq.read_table(out / "index.parquet").to_pylist()
    holders = {r["rights_holder"] for r in index}
    assert "Blender Foundation" in holders
    assert any(
        r["attribution"].startswith(
            "“Big Buck Bunny” by Blender Foundation (https://peach.blender.org/), licensed under CC BY 3.0 "
            "(https://creativecommons.org/licenses/by/3.0/). Modified: cut to "
        )
        for r in index
    )
    # two excerpts of one film: numbered under the film's title
    md = (out / "ATTRIBUTION.md").read_text()
    assert "## Big Buck Bunny (1 of 2)" in md and "## Big Buck Bunny (2 of 2)" in md
    res = runner.invoke(app, ["builds", "list", "--catalog", str(tmp_path / "c.duckdb"), "--json"])
    (listed,) = json.loads(res.stdout)
    assert listed["build_id"] == "example-v1"
    # the content hash the build published in its own build.json, beside the build in the list
    assert listed["content_hash"] == json.loads((out / "build.json").read_text())["content_hash"]


def test_cli_add(tmp_path, media_dir):
    runner = CliRunner()
    base = ["--catalog", str(tmp_path / "c.duckdb"), "--store", str(tmp_path / "s"), "--json"]
    res = runner.invoke(
        app,
        [
            "add",
            str(media_dir / "a.mp4"),
            str(media_dir / "b.mp4"),
            "--license",
            "CC0-1.0",
            "--rights-holder",
            "Me",
            *base,
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["added"] == 2 and {f["license"] for f in data["files"]} == {"CC0-1.0", "CC-BY-NC-4.0"}
    res = runner.invoke(app, ["add", str(media_dir), "--license", "CC0-1.0", "--rights-holder", "Me", *base])
    assert json.loads(res.stdout)["skipped"] == 2
    cat = Catalog(tmp_path / "c.duckdb")
    assert cat.scalar("SELECT count(*) FROM memberships WHERE dataset = 'owned'") == 2
    res = runner.invoke(app, ["add", str(media_dir / "a.mp4"), *base])
    assert res.exit_code == 1 and "licence" in res.output
    res = runner.invoke(
        app, ["add", str(tmp_path / "nope.mp4"), "--license", "MIT", "--rights-holder", "Me", *base]
    )
    assert res.exit_code == 1 and "no such file" in res.output


def test_file_and_fsspec_urls_are_accepted(tmp_path, media_dir):
    import fsspec

    from clipfactory.factory.add import add_owned

    shutil.copy(media_dir / "a.mp4", tmp_path / "x.mp4")
    s = make_settings(tmp_path, [])
    report, sources = add_owned(
        Catalog(s.catalog), s, [f"file://{tmp_path / 'x.mp4'}"], license="CC0-1.0", rights_holder="Me"
    )
    assert report["added"] == 1 and sources[0].origin_uri == str(tmp_path / "x.mp4")
    # Any fsspec filesystem goes through fsspec.open (s3:// the same way, with the s3 extra).
    fs = fsspec.filesystem("memory")
    fs.pipe("/clips/y.mp4", (media_dir / "b.mp4").read_bytes())
    fs.pipe("/clips/y.mp4.json", b'{"license": "CC-BY-4.0", "rights_holder": "Mem", "title": "Y"}')
    report, sources = add_owned(Catalog(s.catalog), s, ["memory://clips"])
    assert report["added"] == 1
    [src] = sources
    assert src.origin_uri == "memory:///clips/y.mp4" and src.rights_holder == "Mem"
    assert BlobStore(s.store).path_of(src.blob_uri).read_bytes() == (media_dir / "b.mp4").read_bytes()


@pytest.mark.shared_data
def test_glitched_avi_runs_through_to_the_build(tmp_path, shared_data):
    s = make_settings(tmp_path, [shared_data / "media" / "Megamind_bugy.avi"], purpose="research")
    summary = pipeline.run_pipeline(s)
    st = summary["stages"]
    assert summary["status"] == "finished"
    # Its glitches are in the pictures; the stream decodes whole: four shots (cuts at frames 98, 154, 200
    # of 270 at 30 fps), of which the 1.9 s and 1.5 s ones are under quality's 2 s minimum.
    assert (st["media.analyse"]["kept"], st["media.analyse"]["failed"]) == (1, 0)
    assert summary["clips_planned"] == 4
    assert (st["quality.filter"]["kept"], st["quality.filter"]["reasons"]) == (2, {"quality.too_short": 2})
    assert (st["media.cut"]["kept"], st["media.cut"]["failed"]) == (2, 0)
    assert summary["build"]["n_clips"] == 2


def test_builds_leave_out_near_duplicates_dropped_by_dedup(first_run):
    import json as _json
    from datetime import UTC, datetime

    import pyarrow as _pa

    from clipfactory.catalog.outcomes import OUTCOME_SCHEMA

    s, _ = first_run
    cat = Catalog(s.catalog)
    kept = [ClipRecord.from_row(r) for r in cat.query("SELECT * FROM clips WHERE blob_uri IS NOT NULL")]
    allowed = [
        c
        for c in kept
        if c.source_id
        not in {
            r["source_id"]
            for r in cat.query("SELECT source_id FROM sources WHERE content_license = 'CC-BY-NC-4.0'")
        }
    ]
    assert len(allowed) >= 2
    dup, original = allowed[0], allowed[1]
    row = {
        "run_id": "r-dedup",
        "stage": "dedup.near",
        "stage_version": 1,
        "config_hash": "c",
        "item_id": dup.clip_id,
        "status": "dropped",
        "reason": f"dedup.near_duplicate_of:{original.clip_id}",
        "error_kind": None,
        "error": None,
        "detail": _json.dumps({"kept": original.clip_id}),
        "output_ids": [],
        "attempt": 1,
        "recorded_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with cat.write() as con:
        con.register("_dd", _pa.Table.from_pylist([row], schema=OUTCOME_SCHEMA))
        con.execute("INSERT INTO stage_outcomes BY NAME SELECT * FROM _dd")
        con.unregister("_dd")
    build = write_build(cat, s, name="deduped", purpose="commercial", clips=kept)
    members = {
        m["clip_id"]
        for m in cat.query("SELECT clip_id FROM build_members WHERE build_id = ?", [build["build_id"]])
    }
    assert dup.clip_id not in members and original.clip_id in members
