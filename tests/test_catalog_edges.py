"""The catalog at the edges, through the real CLI: a read-only catalog, a file that is not a catalog, and
no catalog at all.

A read-only catalog is made with chmod. Root ignores file modes, so as root the reading commands run in a
child process whose bounding set lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (``setpriv``): for it
the modes hold again. Where that is not possible the reading commands still run on the chmod-ed catalog
and must leave it exactly as it was; only the checks that need writes to be refused are skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app

MANIFESTS = Path(__file__).resolve().parent / "data" / "manifests"
KINETICS = MANIFESTS / "kinetics400_sample.csv"

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).parent / "stages" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_synth", synth)
_spec.loader.exec_module(synth)

runner = CliRunner()

# The messages, written out here as the user reads them.
FIX_MISSING = (
    'give the catalog file with --catalog PATH, CLIPFACTORY_CATALOG=PATH or `catalog = "PATH"` in '
    "clipfactory.toml; `clipfactory ingest` or `clipfactory add` creates a new one"
)
FIX_READ_ONLY = (
    "make the catalog file and its folder writable (chmod u+w), or copy the catalog into a writable folder "
    "and give the copy with --catalog; listings, explain and lookup work on a read-only catalog"
)
FIX_NOT_CATALOG = "point --catalog at a catalog file, or at a new path to create one there"


def missing_line(path: Path, origin: str) -> str:
    return f"error: no catalog at {path} ({origin}) (fix: {FIX_MISSING})"


def read_only_line(path: Path, problem: str) -> str:
    return f"error: the catalog {path} is read-only: {problem} (fix: {FIX_READ_ONLY})"


def not_catalog_line(path: Path, reason: str) -> str:
    return f"error: {path} is not a clipfactory catalog (DuckDB) file: {reason} (fix: {FIX_NOT_CATALOG})"


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_error_line(r) -> str:
    """The single line a failed command printed (stderr), checked to be alone and without a traceback."""
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- a real catalog ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A catalog made by the CLI: one owned video added (a run, a blob, fingerprints) and one manifest."""
    root = tmp_path_factory.mktemp("edges")
    video = synth.make_video(root / "v.mp4", [("bars", 1), ("rings", 1)], size=(160, 90), audio=None)
    cat = root / "cat" / "c.duckdb"
    store = root / "store"
    r = invoke(
        "add", video, "--license", "CC-BY-4.0", "--rights-holder", "Edge Owner",
        "--catalog", cat, "--store", store,
    )
    assert r.exit_code == 0, r.output
    r = invoke("ingest", KINETICS, "--catalog", cat)
    assert r.exit_code == 0, r.output
    return {"root": root, "video": video, "cat": cat, "store": store}


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Name -> (mtime_ns, sha256) of every file under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p.relative_to(folder)) + "/"] = (0, "")
    return out


class read_only:
    """chmod a-w on the catalog folder and everything in it (and ``extra`` modes), restored on exit."""

    def __init__(self, folder: Path, file_mode: int = 0o444, dir_mode: int = 0o555):
        self.folder, self.file_mode, self.dir_mode = folder, file_mode, dir_mode

    def __enter__(self):
        self.saved = {p: stat.S_IMODE(p.stat().st_mode) for p in [self.folder, *self.folder.rglob("*")]}
        for p in sorted(self.saved, key=lambda p: len(p.parts), reverse=True):
            p.chmod(self.dir_mode if p.is_dir() else self.file_mode)
        return self

    def __exit__(self, *exc):
        for p, mode in sorted(self.saved.items(), key=lambda kv: len(kv[0].parts)):
            p.chmod(mode)


# -- running as a user whom chmod binds ----------------------------------------------------------------

DRIVER = r"""
import json, sys
import duckdb
from typer.testing import CliRunner
from clipfactory.cli.app import app

opened = []
_connect = duckdb.connect
def connect(database=":memory:", read_only=False, **kw):
    opened.append([str(database), bool(read_only)])
    return _connect(database, read_only=read_only, **kw)
duckdb.connect = connect

out = []
for args in json.loads(sys.argv[1]):
    del opened[:]
    r = CliRunner().invoke(app, args)
    exc = None if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
    out.append({"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "exception": exc,
                "opened": list(opened)})
print(json.dumps(out))
"""


def _bound_prefix(tmp: Path) -> list[str] | None:
    """A command prefix under which file modes stop writes, or ``None`` where there is none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = tmp / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        r = subprocess.run(
            [*prefix, sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        probe.chmod(0o755)
    return prefix if "PermissionError" in r.stderr and not (probe / "x").exists() else None


@pytest.fixture(scope="module")
def bound(tmp_path_factory):
    """How to run CLI commands so that chmod binds them: ``(prefix, True)``, or ``([], False)`` as root
    without a way to drop the capabilities that ignore file modes."""
    prefix = _bound_prefix(tmp_path_factory.mktemp("probe"))
    return (prefix, True) if prefix is not None else ([], False)


def run_cli(prefix: list[str], commands: list[list], cwd: Path) -> list[dict]:
    """Run CLI commands in one child process (under ``prefix``); their exit codes, output and the DuckDB
    connections each opened as ``[path, read_only]``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPFACTORY_")}
    r = subprocess.run(
        [*prefix, sys.executable, "-c", DRIVER, json.dumps([[str(a) for a in c] for c in commands])],
        capture_output=True, text=True, timeout=240, cwd=cwd, env=env,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# -- a read-only catalog -------------------------------------------------------------------------------


def _reading_commands(made) -> list[list]:
    cat, store, video = made["cat"], made["store"], made["video"]
    c = ["--catalog", cat]
    return [
        ["builds", "list", *c],
        ["builds", "list", *c, "--json"],
        ["runs", "list", *c, "--json"],
        ["runs", "list", *c],
        ["datasets", "list", *c, "--json"],
        ["datasets", "list", *c],
        ["datasets", "overlap", *c, "--json"],
        ["datasets", "errors", *c, "--json"],
        ["sources", "list", *c, "--json"],
        ["explain", "youtube:0wR5jVB-WPk", *c, "--purpose", "research", "--json"],
        ["lookup", video, *c, "--store", store, "--json"],
        ["fingerprints", "status", *c, "--store", store, "--json"],
    ]


def test_reading_commands_work_on_a_read_only_catalog_and_leave_it_as_it_was(made, bound):
    prefix, binding = bound
    folder, cat = made["cat"].parent, made["cat"]
    commands = _reading_commands(made)
    if binding:
        # A folder we may not write in and that holds no lock file: readers go without one.
        (folder / "c.duckdb.lock").unlink(missing_ok=True)
        commands.append(["sources", "health", "--catalog", cat, "--json"])
    before = snapshot(folder)
    with read_only(folder):
        results = run_cli(prefix, commands, made["root"])
    assert snapshot(folder) == before, "a reading command wrote to the catalog's folder"
    assert not list(folder.glob("*.wal"))

    for cmd, r in zip(commands, results, strict=True):
        assert (r["code"], r["exception"], r["stderr"]) == (0, None, ""), (cmd, r)
        assert r["opened"], cmd
        assert all(ro for _path, ro in r["opened"]), f"{cmd} opened the catalog read-write: {r['opened']}"
    out = {" ".join(str(a) for a in cmd[:2]) + (" json" if "--json" in cmd else ""): r["stdout"]
           for cmd, r in zip(commands, results, strict=True)}

    assert out["builds list"] == f"no builds yet in {cat}\n"
    assert json.loads(out["builds list json"]) == []
    runs = json.loads(out["runs list json"])
    assert [(x["command"], x["status"], x["last_stage"], x["last_stage_kept"]) for x in runs] == [
        ("add", "finished", "acquire.local", 1)
    ]
    assert "runs" in out["runs list"] and "no runs" not in out["runs list"]
    datasets = json.loads(out["datasets list json"])["datasets"]
    assert sorted(d["dataset"] for d in datasets) == ["kinetics-400", "owned"]
    errors = json.loads(out["datasets errors json"])["errors"]
    assert len(errors) == 6  # the sample has 10 rows, 4 of them good
    sources = json.loads(out["sources list json"])
    owned = "sha256:" + hashlib.sha256(made["video"].read_bytes()).hexdigest()
    assert sources["total"] == 4 and owned in {s["source_id"] for s in sources["sources"]}
    explained = json.loads(out["explain youtube:0wR5jVB-WPk json"])
    assert explained["source_id"] == "youtube:0wR5jVB-WPk"
    assert [m["dataset"] for m in explained["memberships"]] == ["kinetics-400"]
    found = json.loads(out[f"lookup {made['video']} json"])
    assert found["status"] == "matched" and found["matches"][0]["source_id"] == owned
    if binding:
        health = json.loads(out["sources health json"])
        assert health["total"]["sources"] == 3  # the three YouTube sources of the sample


def test_a_read_only_catalog_of_an_older_schema_is_read_as_it_is(made, bound, tmp_path):
    import duckdb

    prefix, binding = bound
    if not binding:
        pytest.skip("running as root with no way to drop CAP_DAC_OVERRIDE: root may migrate the catalog")
    folder = tmp_path / "old"
    folder.mkdir()
    cat = folder / "c.duckdb"
    shutil.copyfile(made["cat"], cat)
    con = duckdb.connect(str(cat))
    con.execute("UPDATE meta SET value = 'from-an-older-version' WHERE key = 'schema_hash'")
    con.close()
    before = snapshot(folder)
    with read_only(folder):
        results = run_cli(prefix, [["datasets", "list", "--catalog", cat, "--json"]], tmp_path)
    assert snapshot(folder) == before
    (r,) = results
    assert (r["code"], r["exception"], r["stderr"]) == (0, None, ""), r
    assert all(ro for _path, ro in r["opened"]), r["opened"]
    assert sorted(d["dataset"] for d in json.loads(r["stdout"])["datasets"]) == ["kinetics-400", "owned"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A catalog after a real ``run``: clips cut and exported, so a build holds them. The run's dedup
    stage loaded the source's fingerprints; the clips cut after it left their crop variants and clip
    descriptors to load (what a lookup on a writable catalog does first)."""
    root = tmp_path_factory.mktemp("ran")
    media = root / "media"
    media.mkdir()
    video = synth.make_video(media / "r.mp4", [("bars", 3), ("rings", 3)], size=(320, 180), audio=None)
    (root / "job.toml").write_text(
        'catalog = "cat/c.duckdb"\nstore = "store"\npurpose = "research"\ninputs = ["media"]\n'
        'license = "CC-BY-4.0"\nrights_holder = "Run Owner"\n[build]\nname = "ro"\nout = "builds"\n'
    )
    r = invoke("run", "--config", root / "job.toml", "--json")
    assert r.exit_code == 0, r.output
    return {"root": root, "video": video, "cat": root / "cat" / "c.duckdb", "store": root / "store"}


def _forget_fingerprints(cat: Path, source_id: str) -> None:
    """Unload a source's fingerprints from the catalog, as in a catalog whose runs have not loaded them
    yet (``fingerprints status`` then counts its blob as pending)."""
    import duckdb

    from clipfactory.catalog.db import close_idle_connections

    # DuckDB shares one open database per file in a process: with a connection of this process still
    # lingering on the catalog, the raw connection below would be closed, and the file checkpointed, later
    close_idle_connections()
    con = duckdb.connect(str(cat))
    con.execute("DELETE FROM frame_hashes WHERE source_id = ?", [source_id])
    con.execute("DELETE FROM fp_indexed WHERE source_id = ?", [source_id])
    con.execute("UPDATE fp_index_meta SET value = CAST(CAST(value AS INTEGER) + 1 AS VARCHAR) WHERE key = 'generation'")
    con.close()


def test_lookup_on_a_read_only_catalog_after_a_run_finds_the_clips_without_writing(ran, bound, tmp_path):
    prefix, binding = bound
    if not binding:
        pytest.skip("running as root with no way to drop CAP_DAC_OVERRIDE: the catalog would be writable")
    owned = "sha256:" + hashlib.sha256(ran["video"].read_bytes()).hexdigest()
    cat, store = ran["cat"], ran["store"]
    commands = [
        ["lookup", ran["video"], "--catalog", cat, "--store", store, "--json"],
        ["fingerprints", "status", "--catalog", cat, "--store", store, "--json"],
        ["lookup", ran["video"], "--catalog", cat, "--store", store],
    ]
    for stale in (False, True):
        if stale:
            _forget_fingerprints(cat, owned)
        folders = [cat.parent, store]
        (cat.parent / "c.duckdb.lock").unlink(missing_ok=True)  # readers in a read-only folder go without one
        before = [snapshot(f) for f in folders]
        with read_only(cat.parent), read_only(store):
            results = run_cli(prefix, commands, ran["root"])
        assert [snapshot(f) for f in folders] == before, "a lookup wrote to the catalog or the store"
        for cmd, r in zip(commands, results, strict=True):
            assert (r["code"], r["exception"], r["stderr"]) == (0, None, ""), (cmd, r)
        found, status = (json.loads(r["stdout"]) for r in results[:2])
        assert status["pending_blobs"] == (1 if stale else 0)
        assert found["status"] == "matched", found
        assert [m["source_id"] for m in found["matches"]] == [owned]
        assert found["index"]["read_only"] is True
        assert found["index"]["loaded_blobs"] == (1 if stale else 0)
        clips = found["matches"][0]["clips"]
        assert clips and all(c["builds"] for c in clips), clips
        text = results[2]["stdout"]
        assert text.startswith("searched 5 frame hashes of 1 sources"), text  # 6 s sampled at 1 fps, 5 usable
        said = "; the catalog is read-only: 1 fingerprint blob it had not loaded searched from the store in memory\n"
        assert (said in text) is stale, text
        assert "[bold]" not in text and owned in text


@pytest.mark.parametrize(
    ("file_mode", "dir_mode", "problem"),
    [
        (0o444, 0o555, "the file is not writable"),
        (0o644, 0o555, "its folder {folder} is not writable"),
        (0o444, 0o755, "the file is not writable"),
    ],
    ids=["file-and-folder", "folder-only", "file-only"],
)
def test_writing_to_a_read_only_catalog_is_one_line_naming_the_file_and_the_fix(
    made, bound, file_mode, dir_mode, problem
):
    prefix, binding = bound
    if not binding:
        pytest.skip("running as root with no way to drop CAP_DAC_OVERRIDE: file modes do not stop root's writes")
    folder, cat = made["cat"].parent, made["cat"]
    (folder / "c.duckdb.lock").touch()  # the lock file of an earlier writer, writable: DuckDB itself refuses
    (folder / "c.duckdb.lock").chmod(0o644)
    other = made["root"] / "w.mp4"
    if not other.exists():
        synth.make_video(other, [("checker", 1)], size=(160, 90), audio=None)
    commands = [
        ["ingest", MANIFESTS / "acav100m_output.csv", "--catalog", cat],
        ["add", other, "--license", "CC0-1.0", "--rights-holder", "X", "--catalog", cat, "--store", made["store"]],
        ["policy", "check", "--purpose", "research", "--catalog", cat],
    ]
    before = snapshot(folder)
    with read_only(folder, file_mode=file_mode, dir_mode=dir_mode):
        (folder / "c.duckdb.lock").chmod(0o644)
        results = run_cli(prefix, commands, made["root"])
    after = snapshot(folder)
    before.pop("c.duckdb.lock"), after.pop("c.duckdb.lock")
    assert after == before
    want = read_only_line(cat, problem.format(folder=folder))
    for cmd, r in zip(commands, results, strict=True):
        assert (r["code"], r["exception"], r["stdout"]) == (1, None, ""), (cmd, r)
        assert r["stderr"].splitlines() == [want], (cmd, r["stderr"])


def _hold_write(path: str, seconds: float, ready) -> None:
    from clipfactory.catalog import Catalog

    with Catalog(path).write() as con:
        con.execute("SELECT 1").fetchall()
        ready.set()
        time.sleep(seconds)


def test_a_new_reader_process_waits_for_a_writer_instead_of_failing(made, tmp_path):
    """A reader's first look at a catalog (its schema check) waits for a writer in another process, as its
    reads do, instead of meeting DuckDB's own lock."""
    cat = tmp_path / "c.duckdb"
    shutil.copyfile(made["cat"], cat)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_hold_write, args=(str(cat), 3.0, ready))
    writer.start()
    try:
        assert ready.wait(60)
        (r,) = run_cli([], [["datasets", "list", "--catalog", cat, "--json"]], tmp_path)
    finally:
        writer.join(60)
    assert (r["code"], r["exception"], r["stderr"]) == (0, None, ""), r
    assert sorted(d["dataset"] for d in json.loads(r["stdout"])["datasets"]) == ["kinetics-400", "owned"]


# -- a file that is not a catalog ----------------------------------------------------------------------


def _make_garbage(p: Path) -> str:
    p.write_bytes(b"these bytes are not a DuckDB database\n" * 200)
    return "DuckDB does not recognise its contents as a database"


def _make_empty(p: Path) -> str:
    p.touch()
    return "the file is empty"


def _make_folder(p: Path) -> str:
    p.mkdir()
    return "it is a folder"


def _make_foreign(p: Path) -> str:
    import duckdb

    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE invoices (id INTEGER, total DOUBLE)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.close()
    return "a DuckDB database of something else (1 table, none of clipfactory's)"


@pytest.mark.parametrize("make", [_make_garbage, _make_foreign, _make_folder], ids=["garbage", "foreign", "folder"])
def test_a_file_that_is_not_a_catalog_is_one_line_for_every_command(tmp_path, make, made):
    bad = tmp_path / "not-a-catalog.duckdb"
    reason = make(bad)
    before = snapshot(tmp_path)
    c = ["--catalog", bad]
    commands = [
        ["builds", "list", *c],
        ["builds", "list", *c, "--json"],
        ["runs", "list", *c],
        ["datasets", "list", *c, "--json"],
        ["sources", "list", *c],
        ["explain", "youtube:0wR5jVB-WPk", *c],
        ["lookup", made["video"], *c, "--store", made["store"]],
        ["ingest", KINETICS, *c],
        ["add", made["video"], "--license", "CC0-1.0", "--rights-holder", "X", *c, "--store", tmp_path / "s"],
        ["policy", "check", "--purpose", "research", *c],
    ]
    for cmd in commands:
        assert one_error_line(invoke(*cmd)) == not_catalog_line(bad, reason), cmd
    assert snapshot(tmp_path) == before, "nothing is written beside a file that is not a catalog"


def test_an_empty_file_is_no_catalog_to_read(tmp_path):
    empty = tmp_path / "empty.duckdb"
    reason = _make_empty(empty)
    for cmd in (["builds", "list"], ["datasets", "list", "--json"], ["explain", "youtube:0wR5jVB-WPk"]):
        assert one_error_line(invoke(*cmd, "--catalog", empty)) == not_catalog_line(empty, reason), cmd
    assert sorted(os.listdir(tmp_path)) == ["empty.duckdb"] and empty.stat().st_size == 0


# -- no catalog ----------------------------------------------------------------------------------------


def test_reading_commands_never_create_a_catalog(tmp_path, monkeypatch, made):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for k in [k for k in os.environ if k.startswith("CLIPFACTORY_")]:
        monkeypatch.delenv(k)
    default = work / "clipfactory.duckdb"
    commands = [
        ["builds", "list"],
        ["builds", "list", "--json"],
        ["builds", "show", "x-v1"],
        ["runs", "list"],
        ["runs", "list", "--json"],
        ["runs", "show", "20260101T000000-abcdef"],
        ["datasets", "list"],
        ["datasets", "list", "--json"],
        ["datasets", "overlap"],
        ["datasets", "errors"],
        ["sources", "list", "--json"],
        ["sources", "health"],
        ["explain", "youtube:0wR5jVB-WPk"],
        ["lookup", made["video"]],
        ["fingerprints", "status"],
        # Commands that work on the sources of a catalog need one too, and never make an empty one.
        ["fetch"],
        ["sources", "revalidate"],
        ["fingerprints", "index"],
        ["policy", "check", "--purpose", "commercial"],
        ["verify", "--build", "x"],
        ["takedown", "youtube:0wR5jVB-WPk", "--dry-run"],
    ]
    for cmd in commands:
        line = one_error_line(invoke(*cmd))
        assert line == missing_line(default, "the default: clipfactory.duckdb in the current folder"), cmd
    assert os.listdir(work) == [], "a reading command created a file"


def test_no_catalog_says_where_it_looked_and_how_the_path_was_chosen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("CLIPFACTORY_")]:
        monkeypatch.delenv(k)
    flag = tmp_path / "flag" / "c.duckdb"
    assert one_error_line(invoke("builds", "list", "--catalog", flag)) == missing_line(flag, "from --catalog")
    env = tmp_path / "env.duckdb"
    r = invoke("runs", "list", env={"CLIPFACTORY_CATALOG": str(env)})
    assert one_error_line(r) == missing_line(env, "from CLIPFACTORY_CATALOG")
    (tmp_path / "clipfactory.toml").write_text('catalog = "data/cat.duckdb"\n')
    r = invoke("datasets", "list")
    assert one_error_line(r) == missing_line(tmp_path / "data" / "cat.duckdb", "from `catalog` in clipfactory.toml")
    assert sorted(os.listdir(tmp_path)) == ["clipfactory.toml"]


def test_empty_listings_print_a_sentence_naming_the_catalog(tmp_path):
    from clipfactory.catalog import Catalog

    cat = tmp_path / "fresh.duckdb"
    with Catalog(cat).write():  # a new, empty catalog
        pass
    c = ["--catalog", cat]
    expect = {
        ("builds", "list"): f"no builds yet in {cat}\n",
        ("builds", "list", "--name", "demo"): f"no builds named demo in {cat}\n",
        ("datasets", "list"): f"no datasets yet in {cat}: run `clipfactory ingest MANIFEST`\n",
        ("sources", "list"): f"no sources yet in {cat}\n",
    }
    for cmd, text in expect.items():
        r = invoke(*cmd, *c)
        assert (r.exit_code, r.stdout, r.stderr) == (0, text, ""), cmd
    r = invoke("runs", "list", *c)
    assert (r.exit_code, r.stdout, r.stderr) == (0, f"no runs yet in {cat}\n", "")
    assert json.loads(invoke("builds", "list", *c, "--json").stdout) == []
    assert json.loads(invoke("runs", "list", *c, "--json").stdout) == []
    assert json.loads(invoke("datasets", "list", *c, "--json").stdout) == {"datasets": []}

    bad = tmp_path / "all_bad.csv"  # a dataset whose every row is refused has no sources
    bad.write_text("label,youtube_id,time_start,time_end,split\nabseiling,tooShort,1,2,train\n")
    r = invoke("ingest", bad, "--format", "kinetics", "--dataset", "kinetics-400", *c)
    assert r.exit_code == 0, r.output
    r = invoke("sources", "list", "--dataset", "kinetics-400", *c)
    assert (r.exit_code, r.stdout, r.stderr) == (0, f"no sources of dataset kinetics-400 in {cat}\n", "")


def test_writing_commands_still_create_a_new_catalog(tmp_path):
    cat = tmp_path / "new" / "c.duckdb"
    r = invoke("ingest", KINETICS, "--catalog", cat, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["manifests"][0]["new_sources"] == 3
    r = invoke("datasets", "list", "--catalog", cat, "--json")
    assert [d["dataset"] for d in json.loads(r.stdout)["datasets"]] == ["kinetics-400"]
