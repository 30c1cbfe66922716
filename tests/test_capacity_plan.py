"""The capacity plan recomputes from its saved figures with one command, and its arithmetic holds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "bench" / "results" / "capacity.json"


def test_the_plan_recomputes_from_the_saved_figures():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "capacity_plan.py"), "--from", str(SAVED), "--print",
         "--node-cores", "32", "--utilisation", "0.5"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    doc, _, plan_json = proc.stdout.partition("\n{\n")
    plan = json.loads("{\n" + plan_json)
    m = json.loads(SAVED.read_text())
    daily = plan["80 years of video a day"]
    # 80 years a day is 80 * 365 * 24 / 24 = 29,200 video-hours every hour
    assert daily["video_hours_per_hour"] == 29_200
    cores = 29_200 * m["per_video_hour"]["cpu_core_s"] / 3600 / 0.5
    assert daily["cpu_cores"] == math.ceil(cores) and daily["nodes"] == math.ceil(cores / 32)
    gbit = 29_200 * m["per_video_hour"]["source_bytes"] * 8 / 3600 / 1e9
    assert daily["ingress_gbit_s"] == round(gbit, 2)
    assert "| nodes of 32 cores |" in doc and "# Capacity plan" in doc


def test_print_writes_nothing_even_after_measuring(tmp_path, monkeypatch, capsys):
    """``--short N --print`` measures and prints: the saved figures (what ``--from`` reproduces
    docs/capacity.md from) and the document stay as they were."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("capacity_plan_under_test", ROOT / "bench" / "capacity_plan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    saved = json.loads(SAVED.read_text())
    monkeypatch.setattr(mod, "measure", lambda short: saved)  # the real measurement takes minutes
    results, doc = tmp_path / "results" / "capacity.json", tmp_path / "capacity.md"
    results.parent.mkdir()
    results.write_text("saved figures\n")
    doc.write_text("the document\n")
    monkeypatch.setattr(mod, "RESULTS", results)
    monkeypatch.setattr(mod, "DOC", doc)
    monkeypatch.setattr(sys, "argv", ["capacity_plan.py", "--short", "2", "--print"])
    assert mod.main() == 0
    assert results.read_text() == "saved figures\n" and doc.read_text() == "the document\n"
    assert "# Capacity plan" in capsys.readouterr().out


def test_the_index_search_time_follows_the_measured_cost_per_candidate(tmp_path):
    """With a measured cost of 500 ns a candidate: a 5-minute query's 9,367 probe hashes each read 16 buckets
    of 1/65,536 of the index, so 1 s of first stage is reached at 65,536 / (9,367 * 16 * 5e-7) = 874,560
    index hashes (0.9 M), and one day of "80 years a day" at the saved hashes per video-hour is
    24 * 29,200 * that many hashes."""
    m = json.loads(SAVED.read_text())
    m["index_search"] = {"index_hashes": 1_000_000, "query_hashes": 2_000, "seconds": 0.25,
                         "s_per_candidate": 5e-7}
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(m))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "capacity_plan.py"), "--from", str(src), "--print"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    doc = " ".join(proc.stdout.partition("\n{\n")[0].split())
    assert "500 ns a candidate" in doc
    assert "holds to about 0.9 M hashes" in doc
    day = 24 * 29_200 * m["per_video_hour"]["frame_hashes"]
    hours = 9_367 * 16 / 65_536 * 5e-7 * day / 3600
    assert f"first stage would take about {hours:,.1f} hours" in doc
    # figures saved before the index was measured give the plan without that paragraph
    old = dict(m)
    del old["index_search"]
    src.write_text(json.dumps(old))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "capacity_plan.py"), "--from", str(src), "--print"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0 and "search time" not in proc.stdout


@pytest.mark.parametrize(
    "args, said",
    [
        (["--utilisation", "70"], "--utilisation is a share of the time busy"),
        (["--from", "no-such-figures.json"], "--from no-such-figures.json: cannot read saved figures"),
    ],
)
def test_wrong_arguments_are_one_line_naming_the_flag(args, said):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "capacity_plan.py"), *args, "--print"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
