"""A run killed with SIGKILL in the middle of cutting: the next run marks it interrupted and resumes it.

No source is fetched twice, no clip is cut twice, and no half-written shard or build is left.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clipfactory import ids
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.catalog.outcomes import list_runs
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord

pytestmark = pytest.mark.shared_data
MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"

if "cf_acquire_server" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "cf_acquire_server", Path(__file__).parents[1] / "acquire" / "server.py"
    )
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["cf_acquire_server"] = _mod
    _spec.loader.exec_module(_mod)
TestServer = sys.modules["cf_acquire_server"].TestServer

# Runs the main job in a child process whose media.cut stage kills the process (SIGKILL, no cleanup)
# when it starts its second batch of one clip: the first clip is cut and recorded, the rest is not.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from clipfactory import registry
    from clipfactory.config import load_settings
    from clipfactory.factory.pipeline import run_pipeline

    cut = registry.get("media.cut")
    cut.batch_size = 1
    calls = {"n": 0}
    original = cut.process_batch

    def process_batch(self, items):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, items)

    cut.process_batch = process_batch
    run_pipeline(load_settings(sys.argv[1]), datasets=["stock"])
    """
)


def test_a_killed_run_resumes_without_repeating_work(tmp_path):
    if not (MEDIA / "bbb_5s.mp4").exists():
        pytest.skip("needs ../shared/data")
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        'catalog = "cat.duckdb"\nstore = "store"\npurpose = "commercial"\n'
        '[build]\nname = "stock"\nout = "builds"\nshard_size = 1\n'
        "[acquire.http]\nallow_private_addresses = true\n[quality.filter]\nmin_duration_s = 0.5\n"
    )
    settings = load_settings(cfg)
    with TestServer() as srv:
        recs = []
        for name, file, spans in (("bunny", "bbb_5s.mp4", [(500, 2500), (3000, 5000)]), ("cup", "cup.mp4", [(1000, 4000)])):
            url = srv.add(f"/v/{name}.mp4", body=(MEDIA / file).read_bytes())
            sid = ids.url_source_id(url)
            recs.append((SourceRecord(sid, "web", url=url, content_license="CC-BY-4.0", rights_holder=name), spans))
        cat = Catalog(settings.catalog)
        with cat.write() as con:
            upsert_records(con, [r for r, _ in recs])
            for r, spans in recs:
                con.execute("INSERT INTO memberships (dataset, source_id) VALUES ('stock', ?)", [r.source_id])
                for s, e in spans:
                    con.execute(
                        "INSERT INTO clip_spans (dataset, source_id, start_ms, end_ms, caption) VALUES ('stock', ?, ?, ?, 'x')",
                        [r.source_id, s, e],
                    )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPFACTORY_")}
        child = subprocess.run([sys.executable, "-c", CHILD, str(cfg)], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        fetched_once = {p: len(srv.times_of(p)) for p in ("/v/bunny.mp4", "/v/cup.mp4")}
        assert all(n >= 1 for n in fetched_once.values())

        killed = cat.query("SELECT run_id, status FROM runs WHERE command = 'run'")
        assert [r["status"] for r in killed] == ["running"]  # nobody could mark it: the process died
        assert [r["status"] for r in list_runs(cat) if r["command"] == "run"] == ["interrupted"]
        # The clip cut before the kill is durable: in the catalog, or in a part file the next run loads.
        from clipfactory.executors.local import LocalExecutor

        LocalExecutor(cat).recover_parts()
        cut_before = cat.query("SELECT item_id FROM stage_outcomes WHERE stage = 'media.cut' AND status = 'kept'")
        assert len(cut_before) == 1
        assert not (tmp_path / "builds" / "stock").exists() or not list((tmp_path / "builds" / "stock").rglob("build.json"))

        from clipfactory.factory.pipeline import run_pipeline

        again = run_pipeline(settings, datasets=["stock"])
        assert {p: len(srv.times_of(p)) for p in fetched_once} == fetched_once  # nothing fetched twice
    cuts = cat.query("SELECT item_id, count(*) AS n FROM stage_outcomes WHERE stage = 'media.cut' AND status = 'kept' GROUP BY item_id")
    assert len(cuts) == 3 and all(r["n"] == 1 for r in cuts)  # every clip cut exactly once
    outcomes = cat.query("SELECT stage, item_id, status, reason FROM stage_outcomes WHERE status <> 'kept' ORDER BY stage")
    assert again["build"]["n_clips"] == 3 and again["build"]["status"] == "complete", (again, outcomes)
    out = Path(again["build"]["out_dir"])
    # Only complete files: every shard the manifest names, no temporary or partial file anywhere.
    manifest = json.loads((out / "build.json").read_text())
    # The build's own files: the index, both attribution files and the disclosure reports (docs/disclosures.md).
    own = ["ATTRIBUTION.json", "ATTRIBUTION.md", "index.parquet", "datasheet.html", "croissant.json",
           "eu_training_summary.md", "eu_training_summary.json", "ab2013.md", "copyrighted_works.csv"]
    assert sorted(f["name"] for f in manifest["files"]) == sorted(own)
    assert manifest["shards"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["build.json", *own, *[sh["name"] for sh in manifest["shards"]]]
    )
    leftovers = [p for p in (tmp_path / "builds").rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []
    assert json.loads((out / "build.json").read_text())["n_clips"] == 3
    statuses = {r["run_id"]: r["status"] for r in cat.query("SELECT run_id, status FROM runs WHERE command = 'run'")}
    assert sorted(statuses.values()) == ["finished", "interrupted"]
