"""Output that adds up: run summaries whose counts agree stage to stage, builds rewritten by a takedown
that carry their true content hash and ordinary file modes, `runs list` with whole run ids in pipeline
order, and an unknown purpose named in its error. Real media (two short files), the real pipeline."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
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
from clipfactory.factory.export import _identity_sha256, content_hash
from clipfactory.fingerprints.takedown import takedown
from clipfactory.policy.profiles import load_policy
from clipfactory.storage import BlobStore

# The order `clipfactory run` runs its stages for owned media (docs/media.md).
PIPELINE_ORDER = [
    "acquire.local", "policy.gate", "media.probe", "media.analyse", "quality.filter", "dedup.near",
    "media.cut", "build.export",
]


def _footage(root: Path, shared: Path, names: list[str]) -> Path:
    d = root / "footage"
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(shared / "media" / n, d / n)
        (d / f"{n}.json").write_text(json.dumps({"license": "CC-BY-4.0", "rights_holder": "Someone", "title": n}))
    return d


def _settings(tmp: Path, footage: Path, **build) -> Settings:
    return Settings(
        catalog=str(tmp / "cat.duckdb"),
        store=str(tmp / "store"),
        inputs=[str(footage)],
        purpose="commercial",
        build={"name": "oc", "out": str(tmp / "builds"), "shard_size": 2, **build},
        stages={"quality.filter": {"min_duration_s": 1.5}, "media.analyse": {"max_clip_s": 3.0}},
    )


@pytest.fixture(scope="module")
def two(tmp_path_factory, shared_data):
    """A build of two files, and the summaries of its first run and of a second run that finds it done."""
    tmp = tmp_path_factory.mktemp("counts")
    s = _settings(tmp, _footage(tmp, shared_data, ["bbb_5s.mp4", "bikes.mp4"]))
    first = pipeline.run_pipeline(s)
    second = pipeline.run_pipeline(s)
    return s, tmp, first, second


def _check_adds_up(summary: dict) -> None:
    stages = summary["stages"]
    assert list(stages) == PIPELINE_ORDER
    for name, c in stages.items():
        # Every item a stage received has one latest outcome there.
        assert c["received"] == c["kept"] + c["dropped"] + c["failed"], (name, c)
    names = list(stages)
    for a, b in zip(names, names[1:], strict=False):
        # What a stage sends on is what the next one receives (no source is refused by this policy, so
        # media.analyse withholds nothing).
        assert stages[a]["outputs"] == stages[b]["received"], (a, b, stages[a], stages[b])
    b = summary["build"]
    assert stages["build.export"]["outputs"] == b["n_clips"] == summary["clips_exported"]


def test_summary_counts_add_up_stage_to_stage(two):
    s, _, first, _ = two
    _check_adds_up(first)
    st = first["stages"]
    # Two files in, each analysed once; media.analyse sends on clips, not sources.
    assert st["acquire.local"]["received"] == 2 and st["media.analyse"]["received"] == 2
    # bbb_5s (5 s) and bikes (10 s): more clips than files, and pieces of at most 3 s.
    assert st["media.analyse"]["outputs"] == st["quality.filter"]["received"] > 2
    index = pq.read_table(Path(first["build"]["out_dir"]) / "index.parquet")
    assert index.num_rows == first["build"]["n_clips"] == st["media.cut"]["kept"]
    assert first["clips_withheld"] == 0


def test_a_second_run_adds_up_and_says_what_earlier_runs_finished(two):
    _, _, first, second = two
    _check_adds_up(second)
    assert second["build"]["status"] == "unchanged"
    for name in PIPELINE_ORDER:
        for k in ("received", "kept", "dropped", "failed", "outputs"):
            assert second["stages"][name][k] == first["stages"][name][k], (name, k)
    # Nothing is redone: each stage that keeps outcomes resumed every item it received.
    for name in ("acquire.local", "policy.gate", "media.probe", "media.analyse", "quality.filter", "media.cut"):
        assert second["resumed"][name] == second["stages"][name]["received"], name
    assert first["resumed"]["media.analyse"] == 0


def test_run_table_has_received_and_sent_on_columns(two):
    s, tmp, first, _ = two
    r = CliRunner().invoke(app, ["runs", "list", "--catalog", s.catalog])
    assert r.exit_code == 0, r.output
    # Whole run ids (what `runs show` takes), never cut short by the table.
    assert first["run_id"] in r.output
    r = CliRunner().invoke(app, ["runs", "show", first["run_id"], "--catalog", s.catalog, "--json"])
    assert r.exit_code == 0, r.output
    shown = list(dict.fromkeys(row["stage"] for row in json.loads(r.output)["counts"]))
    assert shown == PIPELINE_ORDER


def _members(out: Path) -> dict[str, bytes]:
    docs = {}
    for tar_path in sorted(out.glob("shard-*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    docs[m.name[: -len(".json")]] = tar.extractfile(m).read()
    return docs


def _hash_of_files(out: Path) -> str:
    """The content hash export's definition gives the files in ``out``: every member's hashes (the JSON
    member's identity without acquisition times) and the build-level credit files."""
    manifest = json.loads((out / "build.json").read_text())
    docs = _members(out)
    rows = []
    for r in sorted(pq.read_table(out / "index.parquet").to_pylist(), key=lambda r: r["clip_id"]):
        js = docs[r["key"]]
        assert hashlib.sha256(js).hexdigest() == r["json_sha256"]
        rows.append(
            {"clip_id": r["clip_id"], "mp4_sha256": r["mp4_sha256"], "json_sha256": r["json_sha256"],
             "identity_sha256": _identity_sha256(js), "jpg_sha256": r["jpg_sha256"]}
        )
    credits = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in ("ATTRIBUTION.md", "ATTRIBUTION.json")}
    return content_hash(manifest["purpose"], manifest["shard_size"], rows, credits)


def test_takedown_rewrite_carries_the_hash_of_its_own_files(tmp_path, shared_data):
    """A build rewritten by a takedown carries the content hash of the clips it holds (as export defines
    it), not the old version's; the catalog row agrees. Its files have the modes export gives new files."""
    umask = os.umask(0o022)
    try:
        s = _settings(tmp_path, _footage(tmp_path, shared_data, ["bbb_5s.mp4", "bikes.mp4"]))
        first = pipeline.run_pipeline(s)
        old_dir = Path(first["build"]["out_dir"])
        assert _hash_of_files(old_dir) == json.loads((old_dir / "build.json").read_text())["content_hash"]
        cat = Catalog(s.catalog)
        bikes = cat.query("SELECT source_id FROM sources WHERE origin_uri LIKE '%bikes.mp4'")[0]["source_id"]
        receipt = takedown(cat, store=BlobStore(s.store), source_id=bikes, reason="rights holder request")
        assert receipt["status"] == "done"
        new_id = receipt["builds"][0]["new_build_id"]
        row = cat.query("SELECT out_dir, config->>'content_hash' AS h FROM builds WHERE build_id = ?", [new_id])[0]
    finally:
        os.umask(umask)
    new_dir = Path(row["out_dir"])
    manifest = json.loads((new_dir / "build.json").read_text())
    old_manifest = json.loads((old_dir / "build.json").read_text())
    assert 0 < manifest["n_clips"] < first["build"]["n_clips"]
    credits = json.loads((new_dir / "ATTRIBUTION.json").read_text())
    assert [w["title"] for w in credits["works"]] == ["bbb_5s.mp4"]  # the taken-down work is not credited
    assert manifest["content_hash"] == _hash_of_files(new_dir) != old_manifest["content_hash"]
    assert row["h"] == manifest["content_hash"]  # the catalog row agrees with the file
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(new_dir.iterdir())}
    assert modes == {p.name: 0o644 for p in new_dir.iterdir()}  # 0666 less umask 022, as export writes


def test_unknown_purpose_error_names_it_and_the_known_ones():
    policy = load_policy(None)
    with pytest.raises(PolicyError) as e:
        policy.profile("comercial")
    msg = str(e.value)
    assert "'comercial'" in msg and "commercial" in msg and "research" in msg
    with pytest.raises(PolicyError) as e:
        policy.profile("")
    assert "(none given)" in str(e.value)
