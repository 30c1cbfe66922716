"""The ingest command's help and progress: every --map key is documented; a bar on a terminal's stderr
only, never in --json output or in logs."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console
from typer.testing import CliRunner

from clipfactory.cli import sources as cli_sources
from clipfactory.cli.app import app
from clipfactory.sources import ingest_manifest

# Written from the generic adapter's documentation, not read from the code.
MAP_KEYS = [
    "id",
    "url",
    "start",
    "end",
    "caption",
    "title",
    "label",
    "split",
    "duration",
    "license",
    "rights-holder",
    "uploader",
    "platform",
    "time-unit",
]


def test_ingest_help_lists_every_map_key():
    r = CliRunner().invoke(app, ["ingest", "--help"], terminal_width=100)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.replace("│", " ").split())
    section = text[text.index("--map") : text.index("--captions")]
    missing = [k for k in MAP_KEYS if not re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", section)]
    assert missing == [], section
    assert "platform=youtube|web|NAME" in section and "time-unit=s|ms|hms|iso|auto" in section


def test_ingest_reports_its_phases_in_order(catalog, manifests):
    seen: list[str] = []
    ingest_manifest(catalog, manifests / "kinetics400_sample.csv", progress=seen.append)
    assert seen == ["read", "validate", "errors", "sources", "memberships", "spans", "commit"]


def test_progress_bar_on_a_terminal_stderr_only(catalog, manifests, tmp_path, monkeypatch):
    path = manifests / "kinetics400_sample.csv"
    term = io.StringIO()
    monkeypatch.setattr(cli_sources, "err_console", Console(file=term, force_terminal=True, width=100))
    r = CliRunner().invoke(app, ["ingest", str(path), "--catalog", str(tmp_path / "a.duckdb")])
    assert r.exit_code == 0, r.output
    drawn = term.getvalue()
    assert "ingest" in drawn and "kinetics400_sample.csv" in drawn and "━" in drawn
    assert "━" not in r.stdout and "10 rows, 4 ok, 6 bad" in " ".join(r.stdout.split())

    # --json: one JSON document on stdout, and no bar even on a terminal.
    term.truncate(0)
    term.seek(0)
    r = CliRunner().invoke(app, ["ingest", str(path), "--catalog", str(tmp_path / "b.duckdb"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["manifests"][0]["rows_total"] == 10
    assert term.getvalue() == "" and r.stderr == ""

    # Not a terminal (a log file, a pipe): no bar either.
    monkeypatch.setattr(cli_sources, "err_console", Console(file=term, force_terminal=False, width=100))
    r = CliRunner().invoke(app, ["ingest", str(path), "--catalog", str(tmp_path / "c.duckdb")])
    assert r.exit_code == 0, r.output
    assert term.getvalue() == "" and r.stderr == ""
    assert "10 rows, 4 ok, 6 bad" in " ".join(r.stdout.split())


def test_the_same_file_under_another_dataset_says_the_dataset_is_not_applied(tmp_path, manifests):
    import hashlib
    import shutil

    src = manifests / "kinetics400_sample.csv"
    copy = tmp_path / "renamed.csv"
    shutil.copy(src, copy)
    cat = str(tmp_path / "c.duckdb")
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(src), "--catalog", cat])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(copy), "--dataset", "kinetics-600", "--catalog", cat], terminal_width=400)
    assert r.exit_code == 0, r.output
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert r.stdout.splitlines() == [
        f"{copy}: already ingested into kinetics-400 (10 rows, 6 bad); nothing to do",
        "  --dataset kinetics-600 is not applied: a manifest is ingested once, under the dataset of its first "
        f"ingest, whatever its file name (its id is the sha256 of its bytes, {sha})",
    ]
    r = runner.invoke(app, ["ingest", str(copy), "--dataset", "kinetics-600", "--catalog", cat, "--json"])
    (m,) = json.loads(r.stdout)["manifests"]
    assert (m["already_ingested"], m["dataset"], m["dataset_not_applied"]) == (True, "kinetics-400", "kinetics-600")
    # The dataset it was ingested under: no note.
    r = runner.invoke(app, ["ingest", str(copy), "--dataset", "kinetics-400", "--catalog", cat], terminal_width=400)
    assert len(r.stdout.splitlines()) == 1


def test_options_given_to_a_manifest_read_before_are_said_not_applied(tmp_path, manifests):
    """A corrected --map (or --format, --license, ...) on a file already ingested changes nothing: the
    answer says so and names what to do, in the table and in --json, instead of a silent "nothing to do"."""
    src = str(manifests / "kinetics400_sample.csv")
    cat = str(tmp_path / "c.duckdb")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", src, "--catalog", cat]).exit_code == 0
    r = runner.invoke(app, ["ingest", src, "--map", "id=youtube_id,license=licence", "--catalog", cat], terminal_width=400)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("nothing to do")
    assert lines[1].startswith("  --map id=youtube_id,license=licence: not applied")
    assert "ingest it into a new catalog (--catalog NEW.duckdb)" in lines[1]
    r = runner.invoke(app, ["ingest", src, "--format", "kinetics", "--license", "CC-BY-4.0", "--catalog", cat, "--json"])
    (m,) = json.loads(r.stdout)["manifests"]
    assert m["already_ingested"] and m["options_not_applied"] == ["--format kinetics", "--license CC-BY-4.0"]
    r = runner.invoke(app, ["ingest", src, "--catalog", cat, "--json"])  # nothing given: no such field
    assert "options_not_applied" not in json.loads(r.stdout)["manifests"][0]


def test_datasets_list_counts_spans_with_times_and_captions_apart(tmp_path, manifests):
    # Two videos with whole-video captions (3 in all, no times) and the Kinetics sample: 4 good rows, each
    # a span with times and no caption, two of them the same span of one video (lines 9 and 10), so 3
    # sources and 3 spans. Counted from the files as written.
    msrvtt = tmp_path / "msrvtt_test_captions.json"
    msrvtt.write_text(json.dumps([
        {"video": "video1.mp4", "caption": ["a man cooks", "someone cooks food"]},
        {"video": "video2.mp4", "caption": ["a dog runs"]},
    ]))
    cat = str(tmp_path / "c.duckdb")
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(msrvtt), "--catalog", cat], terminal_width=400)
    assert r.exit_code == 0, r.output
    assert "0 spans, 3 captions" in r.stdout
    r = runner.invoke(app, ["ingest", str(manifests / "kinetics400_sample.csv"), "--catalog", cat], terminal_width=400)
    assert r.exit_code == 0 and "3 spans (" in r.stdout, r.output
    r = runner.invoke(app, ["datasets", "list", "--catalog", cat, "--json"])
    got = {d["dataset"]: (d["sources"], d["spans"], d["captions"]) for d in json.loads(r.stdout)["datasets"]}
    assert got == {"msr-vtt": (2, 0, 3), "kinetics-400": (3, 3, 0)}
    r = runner.invoke(app, ["datasets", "list", "--catalog", cat], terminal_width=200)
    assert "captions" in r.stdout
