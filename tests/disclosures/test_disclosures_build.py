"""Every build version ships its reports: the bundled example end to end, a takedown, the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app
from clipfactory.disclosures import REPORT_FILES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's first command on the bundled example media, in a temporary folder."""
    d = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "examples" / "media", d / "media")
    text = (ROOT / "examples" / "clipfactory.toml").read_text().replace("../out/example/", "./")
    (d / "clipfactory.toml").write_text(text)
    res = CliRunner().invoke(app, ["run", "--config", str(d / "clipfactory.toml"), "--json"])
    assert res.exit_code == 0, res.output
    return d, json.loads(res.stdout)


def _cli(d: Path, *args: str):
    res = CliRunner().invoke(app, [*args, "--config", str(d / "clipfactory.toml")])
    assert res.exit_code == 0, res.output
    return res


def test_example_build_lists_its_reports(example):
    d, summary = example
    out = Path(summary["build"]["out_dir"])
    manifest = json.loads((out / "build.json").read_text())
    assert set(manifest["reports"].values()) == set(REPORT_FILES)
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    for name in REPORT_FILES:
        assert listed[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    # The example's inputs: two Big Buck Bunny excerpts (CC BY 3.0, Blender Foundation, from the config)
    # and the synthetic clip (CC0, its sidecar). Clip counts per work come from the index itself.
    index = pq.read_table(out / "index.parquet").to_pylist()
    per_source: dict[str, int] = {}
    for r in index:
        per_source[r["source_id"]] = per_source.get(r["source_id"], 0) + 1
    with open(out / "copyrighted_works.csv", newline="") as fh:
        works = list(csv.DictReader(fh))
    assert sorted(w["license"] for w in works) == ["CC-BY-3.0", "CC-BY-3.0", "CC0-1.0"]
    assert sorted(w["rights_holder"] for w in works) == [
        "Blender Foundation",
        "Blender Foundation",
        "clipfactory contributors",
    ]
    assert {w["source_id"]: int(w["clips"]) for w in works} == per_source
    ab = (out / "ab2013.md").read_text()
    assert f"{len(index)} video clips" in ab and "2 of 3 works are copyrighted" in ab


def test_report_cli_out_and_json(example, tmp_path):
    d, summary = example
    res = _cli(d, "report", summary["build"]["build_id"], "--out", str(tmp_path / "r"), "--json")
    doc = json.loads(res.stdout)
    assert sorted(f["name"] for f in doc["files"]) == sorted(REPORT_FILES)
    assert doc["totals"]["n_clips"] == summary["build"]["n_clips"]
    assert all((tmp_path / "r" / n).exists() for n in REPORT_FILES)
    res = CliRunner().invoke(app, ["report", "nope-v9", "--config", str(d / "clipfactory.toml")])
    assert res.exit_code == 1 and "no such build" in res.output and "nope-v9" in res.output


def test_statements_file_is_used_and_recorded(example, tmp_path):
    d, summary = example
    b, out = summary["build"]["build_id"], Path(summary["build"]["out_dir"])
    (tmp_path / "bad.toml").write_text('provder = "typo"\n')
    res = CliRunner().invoke(
        app,
        ["report", b, "--statements", str(tmp_path / "bad.toml"), "--config", str(d / "clipfactory.toml")],
    )
    assert res.exit_code == 1 and "unknown statement(s): provder" in res.output
    (tmp_path / "st.toml").write_text(
        'provider = "Example Labs"\nsynthetic_data = "one synthetic test pattern"\n'
    )
    _cli(d, "report", b, "--statements", str(tmp_path / "st.toml"))
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["report_statements"]["provider"] == "Example Labs"
    assert "one synthetic test pattern" in (out / "ab2013.md").read_text()
    _cli(d, "report", b)  # again without the file: the recorded statements stay
    eu = json.loads((out / "eu_training_summary.json").read_text())
    assert eu["1_general_information"]["provider"] == "Example Labs"
    # a later file with one key adds it; the recorded provider stays
    (tmp_path / "more.toml").write_text('contact = "data@example.org"\n')
    _cli(d, "report", b, "--statements", str(tmp_path / "more.toml"))
    recorded = json.loads((out / "build.json").read_text())["report_statements"]
    assert recorded["provider"] == "Example Labs" and recorded["contact"] == "data@example.org"


def test_audit_warns_above_the_share(example):
    d, summary = example
    b = summary["build"]["build_id"]
    a = json.loads(_cli(d, "audit", b, "--json", "--max-share", "0.5").stdout)
    # Both Big Buck Bunny excerpts carry the URL https://peach.blender.org/: one domain, the rest owned.
    dom = {r["value"]: r for r in a["dimensions"]["domain"]}
    assert set(dom) == {"peach.blender.org", "unknown"}
    expected = dom["peach.blender.org"]["share"] > 0.5
    assert bool(a["warnings"]) == expected
    a = json.loads(_cli(d, "audit", b, "--json", "--max-share", "1").stdout)
    assert a["warnings"] == []
    assert a["dimensions"]["region"][0]["value"] == "unknown"


def test_takedown_new_version_reports_and_old_superseded(example):
    d, summary = example
    b1 = summary["build"]["build_id"]
    out1 = Path(summary["build"]["out_dir"])
    index = pq.read_table(out1 / "index.parquet").to_pylist()
    synthetic = next(r for r in index if r["content_license"] == "CC0-1.0")["source_id"]
    n_removed = sum(1 for r in index if r["source_id"] == synthetic)
    _cli(d, "takedown", synthetic, "--yes", "--reason", "test")
    m1 = json.loads((out1 / "build.json").read_text())
    b2 = m1["superseded_by"]
    out2 = out1.parent / f"v{int(b1.rsplit('-v', 1)[1]) + 1}"
    m2 = json.loads((out2 / "build.json").read_text())
    assert m2["build_id"] == b2 and set(m2["reports"].values()) == set(REPORT_FILES)
    listed = {f["name"]: f["sha256"] for f in m2["files"]}
    for name in REPORT_FILES:
        assert listed[name] == hashlib.sha256((out2 / name).read_bytes()).hexdigest()
    with open(out2 / "copyrighted_works.csv", newline="") as fh:
        assert synthetic not in {w["source_id"] for w in csv.DictReader(fh)}
    # The old version's reports say they are superseded, and name the version that replaced them.
    assert f"**Superseded** by {b2}" in (out1 / "ab2013.md").read_text()
    assert f"**Superseded** by {b2}" in (out1 / "eu_training_summary.md").read_text()
    assert 'id="superseded"' in (out1 / "datasheet.html").read_text()
    assert 'id="superseded"' not in (out2 / "datasheet.html").read_text()
    # The new version's documents count the takedown that made them.
    assert "Takedowns done: 1;" in (out2 / "eu_training_summary.md").read_text()
    # The statements recorded by the earlier test travel to the takedown's new version.
    assert "Example Labs" in (out2 / "eu_training_summary.md").read_text()
    assert json.loads((out1 / "croissant.json").read_text())["description"].endswith("use the newer version.")
    diff = json.loads(_cli(d, "report", "--diff", b1, b2, "--json").stdout)
    assert diff["clips_left"] == n_removed and diff["clips_entered"] == 0
    assert diff["left"][0]["why"].startswith("takedown td-")


def test_a_new_version_from_a_run_states_what_the_last_one_stated(example):
    """After the takedown above, a run with another shard size makes a new version: its documents carry the
    statements recorded earlier, without --statements again."""
    d, summary = example
    name = summary["build"]["build_id"].rsplit("-v", 1)[0]
    res = json.loads(_cli(d, "run", "--set", "build.shard_size=3", "--json").stdout)
    b3, out3 = res["build"]["build_id"], Path(res["build"]["out_dir"])
    assert b3 == f"{name}-v3"
    m3 = json.loads((out3 / "build.json").read_text())
    assert m3["report_statements"]["provider"] == "Example Labs"
    eu = json.loads((out3 / "eu_training_summary.json").read_text())
    assert eu["1_general_information"]["provider"] == "Example Labs"
    assert "one synthetic test pattern" in (out3 / "ab2013.md").read_text()
