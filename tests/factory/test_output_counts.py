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
    "acquire.local", "policy.gate", "media.probe", "media.analyse", "signals.visual", "quality.filter", "dedup.near",
    "media.cut", "build.export",
]


#: The files of the counted build, with their licences: the commercial purpose refuses the NC one, whose
#: bytes are held, so it is probed and analysed for its fingerprints only and none of its clips is cut.
FILES = {"bbb_5s.mp4": "CC-BY-4.0", "bikes.mp4": "CC-BY-4.0", "carphone_pristine.mp4": "CC-BY-NC-4.0"}


def _footage(root: Path, shared: Path, names: list[str] | dict[str, str]) -> Path:
    d = root / "footage"
    d.mkdir(parents=True, exist_ok=True)
    licences = names if isinstance(names, dict) else dict.fromkeys(names, "CC-BY-4.0")
    for n, licence in licences.items():
        shutil.copy(shared / "media" / n, d / n)
        (d / f"{n}.json").write_text(json.dumps({"license": licence, "rights_holder": "Someone", "title": n}))
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


CONFIG = """catalog = "cat.duckdb"
store = "store"
purpose = "commercial"
inputs = ["footage"]
[build]
name = "oc"
out = "builds"
shard_size = 2
[quality.filter]
min_duration_s = 1.5
[media.analyse]
max_clip_s = 3.0
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data):
    """Three runs of one config through the CLI: the first (--json), a second that finds everything done
    (the table people read), and a third (--json) for its figures."""
    tmp = tmp_path_factory.mktemp("counts")
    _footage(tmp, shared_data, FILES)
    (tmp / "clipfactory.toml").write_text(CONFIG)
    cfg = str(tmp / "clipfactory.toml")
    first = CliRunner().invoke(app, ["run", "--config", cfg, "--json"])
    assert first.exit_code == 0, first.output
    table = CliRunner().invoke(app, ["run", "--config", cfg], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    third = CliRunner().invoke(app, ["run", "--config", cfg, "--json"])
    assert third.exit_code == 0, third.output
    return Catalog(tmp / "cat.duckdb"), json.loads(first.stdout), table.stdout, json.loads(third.stdout)


def _source_of(cat: Catalog, name: str) -> str:
    return cat.query("SELECT source_id FROM sources WHERE origin_uri LIKE ?", [f"%{name}"])[0]["source_id"]


def _check_adds_up(summary: dict, cat: Catalog) -> None:
    stages = summary["stages"]
    assert list(stages) == PIPELINE_ORDER
    for name, c in stages.items():
        # Every item a stage received has one latest outcome there.
        assert c["received"] == c["kept"] + c["dropped"] + c["failed"], (name, c)
    # Figures from the catalog, not from the summary: the refused source and every clip planned.
    nc = _source_of(cat, "carphone_pristine.mp4")
    nc_clips = cat.scalar("SELECT count(*) FROM clips WHERE source_id = ?", [nc])
    all_clips = cat.scalar("SELECT count(*) FROM clips")
    assert nc_clips >= 1
    assert stages["acquire.local"]["received"] == len(FILES)
    assert stages["policy.gate"]["received"] == len(FILES) and stages["policy.gate"]["dropped"] == 1
    assert stages["policy.gate"]["outputs"] == len(FILES) - 1
    # The refused source goes on to be probed and analysed for its fingerprints only.
    assert summary["fingerprint_only_sources"] == 1
    assert stages["media.probe"]["received"] == stages["policy.gate"]["outputs"] + 1
    assert stages["media.probe"]["outputs"] == stages["media.analyse"]["received"] == len(FILES)
    # media.analyse plans every clip, and sends on those of the sources the purpose allows.
    assert summary["clips_planned"] == all_clips
    assert summary["clips_withheld"] == nc_clips
    assert stages["media.analyse"]["outputs"] == all_clips - nc_clips == stages["signals.visual"]["received"]
    for a, b in [("signals.visual", "quality.filter"), ("quality.filter", "dedup.near"), ("dedup.near", "media.cut"), ("media.cut", "build.export")]:
        assert stages[a]["outputs"] == stages[b]["received"], (a, b, stages[a], stages[b])
    n_build = cat.scalar("SELECT count(*) FROM build_members WHERE build_id = ?", [summary["build"]["build_id"]])
    assert stages["build.export"]["outputs"] == summary["build"]["n_clips"] == summary["clips_exported"] == n_build
    assert cat.scalar(
        "SELECT count(*) FROM build_members WHERE build_id = ? AND source_id = ?", [summary["build"]["build_id"], nc]
    ) == 0


def test_summary_counts_add_up_stage_to_stage(runs):
    cat, first, _, _ = runs
    _check_adds_up(first, cat)
    st = first["stages"]
    index = pq.read_table(Path(first["build"]["out_dir"]) / "index.parquet")
    assert index.num_rows == first["build"]["n_clips"] == st["media.cut"]["kept"]
    assert all(v == 0 for v in first["resumed"].values()), first["resumed"]


def test_a_second_run_adds_up_and_says_what_earlier_runs_finished(runs):
    cat, first, _, third = runs
    _check_adds_up(third, cat)
    assert third["build"]["status"] == "unchanged"
    for name in PIPELINE_ORDER:
        for k in ("received", "kept", "dropped", "failed", "outputs"):
            assert third["stages"][name][k] == first["stages"][name][k], (name, k)
    # Nothing is redone: each stage that keeps outcomes resumed every item it received.
    for name in ("acquire.local", "policy.gate", "media.probe", "media.analyse", "signals.visual", "quality.filter", "media.cut"):
        assert third["resumed"][name] == third["stages"][name]["received"], name


def test_run_table_shows_what_each_stage_received_and_sent_on(runs):
    cat, first, table, _ = runs
    lines = table.splitlines()
    header = next(line for line in lines if "stage" in line and "received" in line)
    cols = [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")]
    assert cols == ["stage", "received", "kept", "dropped", "failed", "sent on"]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == len(cols) and cells[0] in PIPELINE_ORDER:
            rows[cells[0]] = [int(x) for x in cells[1:]]
    assert list(rows) == PIPELINE_ORDER
    for name in PIPELINE_ORDER:
        c = first["stages"][name]
        assert rows[name] == [c["received"], c["kept"], c["dropped"], c["failed"], c["outputs"]], name
    text = " ".join(table.split())
    assert "finished by earlier runs, not redone: acquire.local 3, policy.gate 3, media.probe 3" in text
    nc_clips = first["clips_withheld"]
    assert (
        f"1 source the purpose refuses went on to media.probe and media.analyse for its fingerprints only; "
        f"its {nc_clips} planned clip{'s are' if nc_clips != 1 else ' is'} not cut" in text
    )


def test_runs_list_and_show_name_whole_ids_in_pipeline_order(runs):
    cat, first, _, _ = runs
    r = CliRunner().invoke(app, ["runs", "list", "--catalog", str(cat.path)])
    assert r.exit_code == 0, r.output
    # Whole run ids (what `runs show` takes), never cut short by the table.
    assert first["run_id"] in r.output
    r = CliRunner().invoke(app, ["runs", "show", first["run_id"], "--catalog", str(cat.path), "--json"])
    assert r.exit_code == 0, r.output
    shown = list(dict.fromkeys(row["stage"] for row in json.loads(r.output)["counts"]))
    assert shown == PIPELINE_ORDER


def test_runs_list_says_what_a_resumed_run_did_not_redo(runs):
    """A run that only resumes finished work has no outcome rows of its own (0 kept); `runs list` says how
    many items it found finished instead of showing a run that did nothing."""
    cat, first, _, third = runs
    r = CliRunner().invoke(app, ["runs", "list", "--catalog", str(cat.path), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["run_id"]: row for row in json.loads(r.output)}
    assert rows[first["run_id"]]["resumed"] == 0
    # The third run redid nothing: every item the first run finished in a stage that resumes by item.
    resumable = ("acquire.local", "policy.gate", "media.probe", "media.analyse", "signals.visual", "quality.filter", "media.cut")
    finished_before = sum(first["stages"][n]["received"] for n in resumable)
    assert (rows[third["run_id"]]["last_stage"], rows[third["run_id"]]["last_stage_kept"]) == (None, 0)
    assert rows[third["run_id"]]["resumed"] == finished_before > 0
    table = CliRunner().invoke(app, ["runs", "list", "--catalog", str(cat.path)]).output
    line = next(x for x in table.splitlines() if third["run_id"] in x)
    assert line.split()[-4:] == ["0", "0", "0", str(finished_before)]


def test_runs_list_counts_what_a_run_delivered_once_not_once_per_stage(runs):
    """`runs list` shows the stage a run reached last and the items it kept there: the first run's clips in
    its build, each counted once (not once for every stage it passed), beside the items stopped on the way."""
    cat, first, _, _ = runs
    n_clips = len(_members(Path(first["build"]["out_dir"])))  # read from the build's shards
    assert n_clips > 0
    r = CliRunner().invoke(app, ["runs", "list", "--catalog", str(cat.path), "--json"])
    assert r.exit_code == 0, r.output
    row = {x["run_id"]: x for x in json.loads(r.output)}[first["run_id"]]
    assert (row["last_stage"], row["last_stage_kept"], row["stages"]) == ("build.export", n_clips, len(PIPELINE_ORDER))
    # each dropped or failed item once, at the stage that stopped it (the first run resumed nothing)
    dropped = sum(first["stages"][n]["dropped"] for n in PIPELINE_ORDER)
    failed = sum(first["stages"][n]["failed"] for n in PIPELINE_ORDER)
    assert (row["dropped"], row["failed"]) == (dropped, failed) and dropped >= 1
    table = CliRunner().invoke(app, ["runs", "list", "--catalog", str(cat.path)], env={"COLUMNS": "200"}).output
    assert "kept by" in table and "last stage" in table
    line = next(x for x in table.splitlines() if first["run_id"] in x)
    assert line.split()[-5:] == ["build.export", str(n_clips), str(dropped), str(failed), "0"]


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


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_takedown_rewrite_carries_the_hash_of_its_own_files(tmp_path, shared_data, umask):
    """A build rewritten by a takedown carries the content hash of the clips it holds (as export defines
    it), not the old version's; the catalog row agrees. Its files have the modes export gives a build's
    files, and the blob store's: 0666 less the umask, like any new file."""
    old_umask = os.umask(umask)
    try:
        s = _settings(tmp_path, _footage(tmp_path, shared_data, ["carphone_pristine.mp4", "bikes.mp4"]))
        first = pipeline.run_pipeline(s)
        old_dir = Path(first["build"]["out_dir"])
        built_hash = json.loads((old_dir / "build.json").read_text())["content_hash"]
        assert _hash_of_files(old_dir) == built_hash
        cat = Catalog(s.catalog)
        bikes = cat.query("SELECT source_id FROM sources WHERE origin_uri LIKE '%bikes.mp4'")[0]["source_id"]
        receipt = takedown(cat, store=BlobStore(s.store), source_id=bikes, reason="rights holder request")
        assert receipt["status"] == "done"
        new_id = receipt["builds"][0]["new_build_id"]
        row = cat.query("SELECT out_dir, config->>'content_hash' AS h FROM builds WHERE build_id = ?", [new_id])[0]
    finally:
        os.umask(old_umask)
    new_dir = Path(row["out_dir"])
    manifest = json.loads((new_dir / "build.json").read_text())
    old_manifest = json.loads((old_dir / "build.json").read_text())
    assert 0 < manifest["n_clips"] < first["build"]["n_clips"]
    credits = json.loads((new_dir / "ATTRIBUTION.json").read_text())
    assert [w["title"] for w in credits["works"]] == ["carphone_pristine.mp4"]  # the taken-down work is not credited
    assert manifest["content_hash"] == _hash_of_files(new_dir) != built_hash
    # The superseded version lost its affected shards: its build.json no longer claims the hash of a whole
    # build (it keeps the one it was built with apart), lists the hashes of the files that are there now,
    # and its credits no longer name the removed work.
    assert old_manifest["status"] == "superseded" and old_manifest["superseded_by"] == new_id
    assert old_manifest["content_hash_as_built"] == built_hash and old_manifest["content_hash"] is None
    assert set(old_manifest["removed_shards"]) and not any((old_dir / n).exists() for n in old_manifest["removed_shards"])
    # its shard list, counts and catalog row are those of what is left; the counts it was built with stay apart
    left = {p.name for p in old_dir.glob("*.tar")}
    assert {sh["name"] for sh in old_manifest["shards"]} == left and old_manifest["n_shards"] == len(left)
    assert old_manifest["n_clips"] == pq.read_table(old_dir / "index.parquet").num_rows
    assert old_manifest["n_clips_as_built"] == first["build"]["n_clips"]
    old_row = cat.query("SELECT n_clips, n_shards, status FROM builds WHERE build_id = ?", [first["build"]["build_id"]])[0]
    assert (old_row["n_clips"], old_row["n_shards"], old_row["status"]) == (
        old_manifest["n_clips"], len(left), "superseded"
    )
    for f in old_manifest["files"]:
        assert hashlib.sha256((old_dir / f["name"]).read_bytes()).hexdigest() == f["sha256"], f["name"]
    assert {"index.parquet", "ATTRIBUTION.md", "ATTRIBUTION.json"} <= {f["name"] for f in old_manifest["files"]}
    old_credits = json.loads((old_dir / "ATTRIBUTION.json").read_text())
    assert [w["title"] for w in old_credits["works"]] == ["carphone_pristine.mp4"]
    assert "bikes.mp4" not in (old_dir / "ATTRIBUTION.md").read_text()
    assert row["h"] == manifest["content_hash"]  # the catalog row agrees with the file
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(new_dir.iterdir())}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
    # The first version, written by export, has the same modes (its shards that stayed are shared).
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in old_dir.iterdir()} == {
        p.name: 0o666 & ~umask for p in old_dir.iterdir()
    }
    # So do the store's blobs: sources, clips, analyses, fingerprints and thumbnails.
    blobs = {str(p): stat.S_IMODE(p.stat().st_mode) for p in Path(s.store, "blobs").rglob("*") if p.is_file()}
    assert len(blobs) > 5 and blobs == dict.fromkeys(blobs, 0o666 & ~umask)


def test_unknown_purpose_error_names_it_and_the_known_ones():
    policy = load_policy(None)
    known = ", ".join(sorted(policy.profiles))
    assert "commercial" in known and "research" in known
    with pytest.raises(PolicyError) as e:
        policy.profile("comercial")
    assert e.value.message == f"unknown purpose profile 'comercial'; the known purposes are: {known}"
    assert e.value.item == "comercial"
    # No square brackets anywhere: a terminal that reads Rich markup would swallow "[profiles.x]".
    assert "[" not in str(e.value) and "profiles.comercial" in str(e.value)
    with pytest.raises(PolicyError) as e:
        policy.profile("")
    assert e.value.message == f"unknown purpose profile (none given); the known purposes are: {known}"


def _one_line(r) -> str:
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_run_that_names_nothing_to_build_says_what_the_catalog_holds(tmp_path, shared_data, monkeypatch):
    """After `add`, a plain `run` names neither inputs nor a dataset: one line naming the datasets the
    catalog holds and the option to give, and no run recorded. A --split that matches nothing names the
    dataset's splits."""
    monkeypatch.chdir(tmp_path)  # the build goes to ./builds
    runner = CliRunner()
    cat = tmp_path / "cat.duckdb"
    video = tmp_path / "carphone_pristine.mp4"
    shutil.copy(shared_data / "media" / "carphone_pristine.mp4", video)
    r = runner.invoke(app, ["add", str(video), "--license", "CC-BY-4.0", "--rights-holder", "B", "--catalog", str(cat),
                            "--store", str(tmp_path / "store")])
    assert r.exit_code == 0, r.output
    env = {"CLIPFACTORY_CATALOG": str(cat), "CLIPFACTORY_STORE": str(tmp_path / "store")}
    r = runner.invoke(app, ["run"], env=env)
    assert _one_line(r) == (
        "error: nothing to build: the run names no inputs and no dataset (fix: name what to build with "
        "--dataset (the catalog holds owned (1 source); media added with `clipfactory add` is the dataset "
        "owned), or `datasets = [...]` or `inputs = [...]` in clipfactory.toml)"
    )
    r = runner.invoke(app, ["run", "--dataset", "owned", "--split", "tset"], env=env)
    assert _one_line(r) == (
        "error: owned: nothing to build: no source of owned matches --split tset (its splits: none) "
        "(fix: check the --split/--label values against `clipfactory datasets list`)"
    )
    assert [x["command"] for x in Catalog(cat).query("SELECT command FROM runs")] == ["add"]
    r = runner.invoke(app, ["run", "--dataset", "owned", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["build"]["n_clips"] >= 1
