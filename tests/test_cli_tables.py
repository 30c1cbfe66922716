"""Tables piped to another program are as wide as their values: every cell is whole on one line, so an id
read from `sources list` or `runs list` can be given to the next command."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from clipfactory.cli.app import app

KINETICS = Path(__file__).resolve().parent / "data" / "manifests" / "kinetics400_sample.csv"

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).parent / "stages" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_synth", synth)
_spec.loader.exec_module(synth)


def test_piped_tables_keep_ids_whole_for_the_next_command(tmp_path):
    runner = CliRunner()  # its output is not a terminal: as when piped
    cat = str(tmp_path / "c.duckdb")
    assert runner.invoke(app, ["ingest", str(KINETICS), "--catalog", cat]).exit_code == 0
    r = runner.invoke(app, ["sources", "list", "--catalog", cat])
    assert r.exit_code == 0, r.output
    # The sample's three good sources (lines 2, 3 and 9-10 of the file), read from it by eye.
    want = ["youtube:0wR5jVB-WPk", "youtube:3caPS4FHFF8", "youtube:AbCdEfGhIjK"]
    found = [sid for line in r.stdout.splitlines() for sid in re.findall(r"youtube:[\w-]{11}", line)]
    assert sorted(found) == want
    lines = r.stdout.splitlines()
    assert all(len(line) == len(lines[1]) for line in lines[1:]), "every table line is one line"
    r = runner.invoke(app, ["explain", found[0], "--catalog", cat, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["source_id"] == found[0]
    video = synth.make_video(tmp_path / "v.mp4", [("bars", 1)], size=(160, 90), audio=None)
    r = runner.invoke(app, ["add", str(video), "--license", "CC0-1.0", "--rights-holder", "X", "--catalog", cat,
                            "--store", str(tmp_path / "store")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["runs", "list", "--catalog", cat])
    (row,) = [line for line in r.stdout.splitlines() if " add " in line]
    run_id = row.split()[0]
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", run_id), row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row), row  # the time beside the date
    assert runner.invoke(app, ["runs", "show", run_id, "--catalog", cat]).exit_code == 0


def test_runs_show_says_how_each_run_ended(tmp_path):
    """`runs show` names the run's status, in the text and the JSON: a finished, a failed and an interrupted
    run, each ended by hand here."""
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.pipelines import Run

    cat_path = str(tmp_path / "c.duckdb")
    s = load_settings(overrides={"catalog": cat_path, "store": str(tmp_path / "store")})
    ids = {}
    for want, exc in (("finished", None), ("failed", RuntimeError("boom")), ("interrupted", KeyboardInterrupt())):
        run = Run(s, command="add", catalog=Catalog(cat_path))
        try:
            with run:
                ids[want] = run.run_id
                if exc is not None:
                    raise exc
        except (RuntimeError, KeyboardInterrupt):
            pass
    runner = CliRunner()
    for want, run_id in ids.items():
        r = runner.invoke(app, ["runs", "show", run_id, "--catalog", cat_path])
        assert r.exit_code == 0, r.output
        first = r.stdout.splitlines()[0]
        assert first.startswith(f"run {run_id}: {want} (clipfactory add, executor local, started "), first
        r = runner.invoke(app, ["runs", "show", run_id, "--catalog", cat_path, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["status"] == want
