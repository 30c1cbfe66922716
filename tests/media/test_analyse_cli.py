"""`clipfactory analyse FILE`: the analysis pass on one file, with the config's options and --set overrides."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app


@pytest.mark.shared_data
def test_analyse_shows_the_shots_and_planned_clips(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no clipfactory.toml here
    bikes = str(shared_data / "media" / "bikes.mp4")
    r = CliRunner().invoke(app, ["analyse", bikes, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # bikes.mp4 (25 fps) has hard cuts at frames 30, 76, 137, 187 and 242, found by eye
    assert [s["start_frame"] for s in d["shots"]][1:] == pytest.approx([30, 76, 137, 187, 242], abs=1)
    assert d["clips"] and all(c["end_ms"] > c["start_ms"] for c in d["clips"])
    assert d["config"]["cut_adaptive_ratio"] == 3.0
    # an override reaches the detector: a stricter adaptive ratio finds fewer cuts
    r2 = CliRunner().invoke(app, ["analyse", bikes, "--json", "--set", "media.analyse.cut_adaptive_ratio=6"])
    assert r2.exit_code == 0, r2.output
    d2 = json.loads(r2.stdout)
    assert d2["config"]["cut_adaptive_ratio"] == 6.0 and len(d2["shots"]) < len(d["shots"])
    # a human-readable table without --json
    r3 = CliRunner().invoke(app, ["analyse", bikes])
    assert r3.exit_code == 0 and "6 shots" in r3.output


def test_analyse_names_a_bad_option(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app, ["analyse", str(shared_data / "media" / "cup.mp4"), "--set", "media.analyse.cut_ratio=2"]
    )
    assert r.exit_code == 1
    # names the section, the unknown option and the options there are
    text = " ".join(r.output.split())
    assert "--set media.analyse.cut_ratio=2: invalid configuration: [media.analyse] cut_ratio: unknown option" in text
    assert "(known: " in text and "cut_adaptive_ratio" in text
