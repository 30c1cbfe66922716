"""Every command the README names is run, as a new user would run it, on the bundled example.

tests/test_doc_commands.py checks that every documented command line parses against the CLI; this test
runs them. The README's main command runs first, through the installed ``clipfactory`` script, in a copy of
``examples/`` (so that its output lands in the copy). Then each command of the README's task table runs in
that folder, in the table's order, with its placeholders (``FILE``, ``SOURCE``, ``RUN``, ...) filled from the
example run. A command that is added to the README is run here without further work; one whose
placeholder has no value here fails the test and says which.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Arguments for commands that the table names bare, so that they act on the example and change nothing
#: the later commands look at (the takedown is a dry run).
EXTRA_ARGS = {
    "add": ["media/synthetic_bars.mp4"],
    "takedown": ["{SOURCE}", "--dry-run"],
}


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def readme_main_command() -> str:
    """The ``clipfactory ...`` part of the README's first shell line (the install is the CI's job)."""
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md starts with a bash block holding the main command"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    first = lines[0]
    cmd = first.split("&&")[-1].strip()
    assert cmd.startswith("clipfactory "), (
        f"the README's first command ends with a clipfactory command: {first!r}"
    )
    return cmd


def readme_table_commands() -> list[str]:
    """The ``clipfactory ...`` code spans of the README's task table, in order, each once."""
    rows = [ln for ln in README.read_text().splitlines() if ln.startswith("|")]
    out: list[str] = []
    for row in rows:
        for span in re.findall(r"`(clipfactory [^`]+)`", row):
            if span not in out:
                out.append(span)
    return out


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's main command, run through the installed script in a copy of ``examples/``."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples")
    exe = Path(sys.executable).with_name("clipfactory")
    argv = shlex.split(readme_main_command())
    proc = subprocess.run([str(exe), *argv[1:]], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "build example-v1 (complete)" in proc.stdout, proc.stdout
    out = root / "out" / "example"
    catalog = Catalog(out / "catalog.duckdb")
    source = catalog.scalar("SELECT source_id FROM sources ORDER BY source_id LIMIT 1")
    run_id = catalog.scalar("SELECT run_id FROM runs ORDER BY started_at LIMIT 1")
    values = {
        "FILE": "media/bbb_meadow.mp4",
        "FILE...": str(ROOT / "tests" / "data" / "manifests" / "kinetics400_sample.csv"),
        "PATH": str(out / "store"),
        "SOURCE": source,
        "RUN": run_id,
        "B": "example",
        "QUERY": "a rabbit in a meadow",
    }
    return root / "examples", values


def _fill(cmd: str, values: dict[str, str]) -> list[str]:
    words = shlex.split(cmd)[1:]
    if not any(w.startswith("-") or w.isupper() for w in words[1:]) and words[0] in EXTRA_ARGS:
        words += EXTRA_ARGS[words[0]]
    filled = []
    for w in words:
        key = w.strip("{}")
        if w.isupper() or (w.startswith("{") and w.endswith("}")):
            assert key in values, (
                f"`{cmd}`: no value for the placeholder {key} in tests/test_readme_commands.py"
            )
            filled.append(values[key])
        else:
            filled.append(w)
    return filled


def test_the_readme_names_its_commands():
    cmds = readme_table_commands()
    # the table is the README's list of tasks; these are the ones a user meets first
    for must in (
        "clipfactory run",
        "clipfactory ingest FILE...",
        "clipfactory lookup FILE",
        "clipfactory explain SOURCE",
    ):
        assert must in cmds, cmds


def test_every_readme_command_runs_on_the_example(example, monkeypatch):
    folder, values = example
    monkeypatch.chdir(folder)
    runner = CliRunner()
    ran = []
    for cmd in readme_table_commands():
        argv = _fill(cmd, values)
        res = runner.invoke(app, argv)
        assert res.exit_code == 0, f"`clipfactory {' '.join(argv)}` exited {res.exit_code}:\n{res.output}"
        assert res.output.strip(), f"`clipfactory {' '.join(argv)}` printed nothing"
        assert "Traceback" not in res.output, res.output
        ran.append(argv[0])
    assert {"ingest", "run", "takedown", "verify", "lookup", "report", "search", "plan"} <= set(ran)
    # the dry-run takedown removed nothing: the build still verifies clean
    res = runner.invoke(app, ["verify", "--build", "example", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["ok"] is True and report["findings"] == [] and report["members_scanned"] > 0, report


def test_a_takedown_with_only_the_catalog_named_removes_the_files_of_the_store_its_runs_used(
    example, tmp_path, monkeypatch
):
    """No --store, no --config: the store is the one the catalog's runs recorded, not ./clipfactory-store."""
    folder, values = example
    cat = folder.parent / "out" / "example" / "catalog.duckdb"
    store = folder.parent / "out" / "example" / "store"
    source = values["SOURCE"]
    blob = store / "blobs" / source[7:9] / source[9:11] / source[7:]
    assert blob.is_file()
    monkeypatch.chdir(tmp_path)  # elsewhere, with only the catalog named
    monkeypatch.setenv("CLIPFACTORY_CATALOG", str(cat))
    res = CliRunner().invoke(app, ["takedown", source, "--yes", "--json"])
    assert res.exit_code == 0, res.output
    receipt = json.loads(res.stdout)
    assert not blob.exists()
    assert Path(receipt["receipt_path"]).is_relative_to(store)
    assert list(tmp_path.iterdir()) == []  # no empty default store made here
