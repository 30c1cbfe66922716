"""`clipfactory run --plan PLAN`: a plan's sources, and only those, are fetched and built; the summary and
`clipfactory plan --check PLAN --build B` show target, planned and achieved shares; `dedup.semantic` drops a
clip whose vector (planted by the test as a visual model's) duplicates another's, and `[build] balance` caps a
category of the same build.

Real media from ../shared/data is served by a real HTTP server on 127.0.0.1. Categories come from manifest
labels mapped in a taxonomy file of the test (no text model is needed).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app
from clipfactory.semantic import store

pytestmark = pytest.mark.shared_data

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"

_spec = importlib.util.spec_from_file_location("cf_acquire_server", Path(__file__).parents[1] / "acquire" / "server.py")
if "cf_acquire_server" not in sys.modules:
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["cf_acquire_server"] = _mod
    _spec.loader.exec_module(_mod)
server_mod = sys.modules["cf_acquire_server"]

TAXONOMY = """threshold = 0.3
[categories.driving]
prompts = ["a car driving on a road"]
[categories.people-handling-objects]
prompts = ["hands folding clothes"]
[labels]
"driving cars" = "driving"
"folding clothes" = "people-handling-objects"
"""


def _cli(*args: str, ok: bool = True) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
        return json.loads(r.output)
    return {"exit_code": r.exit_code, "output": r.output}


@pytest.fixture
def site(tmp_path, monkeypatch):
    if not (MEDIA / "bikes.mp4").exists():
        pytest.skip("needs ../shared/data")
    monkeypatch.chdir(tmp_path)
    for k in list(__import__("os").environ):
        if k.startswith("CLIPFACTORY_"):
            monkeypatch.delenv(k)
    (tmp_path / "taxonomy.toml").write_text(TAXONOMY)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "taxonomy.toml"))
    with server_mod.TestServer() as srv:
        bikes, cup = (MEDIA / "bikes.mp4").read_bytes(), (MEDIA / "cup.mp4").read_bytes()
        for path, body in {"/d/road.mp4": bikes, "/d/road-b.mp4": bikes, "/h/cup.mp4": cup, "/h/cup-b.mp4": cup,
                           "/n/bunny.mp4": (MEDIA / "bbb_5s.mp4").read_bytes()}.items():
            srv.add(path, body=body)
        yield srv


def test_run_plan_builds_only_the_planned_sources_and_balance_caps_a_category(tmp_path, site):
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        """catalog = "cat.duckdb"
store = "store"
[build]
name = "mix"
out = "builds"
balance = {driving = 0.5}
[acquire.http]
allow_private_addresses = true   # the test site is on 127.0.0.1
[quality.filter]
min_duration_s = 0.5
[dedup.semantic]
enabled = true
embed_missing = false   # the vectors are planted below
"""
    )
    u = site.url
    rows = ["video_url,licence,author,name,from,to,lab"]
    for path in ("/d/road.mp4", "/d/road-b.mp4"):  # three spans each
        rows += [f"{u(path)},CC-BY-4.0,A Driver,Road,{a},{b},driving cars" for a, b in ((0, 2), (3, 5), (6, 8))]
    for path in ("/h/cup.mp4", "/h/cup-b.mp4"):  # one span each
        rows.append(f"{u(path)},CC0-1.0,Some Maker,Cup,1,4,folding clothes")
    rows.append(f"{u('/n/bunny.mp4')},CC-BY-NC-4.0,Blender Foundation,Bunny,0,2,driving cars")
    (tmp_path / "stock.csv").write_text("\n".join(rows) + "\n")
    _cli("ingest", str(tmp_path / "stock.csv"), "--dataset", "stock", "--config", str(cfg),
         "--map", "url=video_url,license=licence,rights_holder=author,title=name,start=from,end=to,label=lab,time-unit=s")
    _cli("policy", "check", "--purpose", "commercial", "--config", str(cfg))
    plan = _cli("plan", "--target", "driving=0.5,people-handling-objects=0.5", "--budget-sources", "2",
                "--purpose", "commercial", "--config", str(cfg), "--out", str(tmp_path / "plan.json"))
    by_cat = {s["category"]: s["source_id"] for s in plan["sources"]}
    assert len(plan["sources"]) == 2 and set(by_cat) == {"driving", "people-handling-objects"}
    cat = Catalog(tmp_path / "cat.duckdb")
    url_of = {r["source_id"]: r["url"] for r in cat.query("SELECT source_id, url FROM sources")}
    planned_paths = {url_of[s].split(site.origin, 1)[1] for s in by_cat.values()}
    assert "/n/bunny.mp4" not in planned_paths  # CC BY-NC: not acquirable for commercial use
    # Clip vectors of a "visual model": the driving spans at 0 s and 3 s get the same vector, the rest
    # vectors orthogonal to it and to each other.
    spans = cat.query("SELECT clip_id, source_id, start_ms FROM clip_spans ORDER BY source_id, start_ms")
    vecs = np.eye(len(spans), 8 + len(spans), dtype=np.float32)
    twins = {s["clip_id"] for s in spans if s["source_id"] == by_cat["driving"] and s["start_ms"] in (0, 3000)}
    rows = [k for k, s in enumerate(spans) if s["clip_id"] in twins]
    vecs[rows[1]] = vecs[rows[0]]
    with cat.write() as con:
        store.register_model(con, {"model_id": "planted@sha256:0", "model": "planted", "dim": vecs.shape[1]}, "visual")
        store.write_vectors(con, [{"item_id": s["clip_id"], "kind": "clip", "source_id": s["source_id"],
                                   "clip_id": s["clip_id"]} for s in spans], vecs, model_id="planted@sha256:0",
                            modality="visual")

    # A purpose other than the plan's is refused before any work.
    bad = _cli("run", "--plan", str(tmp_path / "plan.json"), "--purpose", "research", "--config", str(cfg), ok=False)
    assert bad["exit_code"] != 0 and "made for purpose 'commercial'" in bad["output"]

    r = _cli("run", "--plan", str(tmp_path / "plan.json"), "--config", str(cfg))
    assert r["purpose"] == "commercial" and r["sources"] == 2 and r["fetched"] == 2
    fetched = {p for p, n in site.hits.items() if n and p.endswith(".mp4")}
    assert fetched == planned_paths  # the other three videos were never asked for

    # dedup.semantic: of the clips of the twin spans one is dropped, naming the other (which one: the sharper).
    # A clip can start a frame after its span (3.04 s for 3 s here): it takes its span's vector.
    sem = {o["item_id"]: o for o in cat.query(
        "SELECT item_id, status, reason FROM latest_outcomes WHERE stage = 'dedup.semantic'")}
    twins = {c["clip_id"] for c in cat.query("SELECT clip_id, start_ms FROM clips WHERE source_id = ?",
                                             [by_cat["driving"]]) if c["start_ms"] // 1000 in (0, 3)}
    assert len(twins) == 2 and twins <= set(sem)
    gone = [c for c in twins if sem[c]["status"] == "dropped"]
    assert len(gone) == 1
    (stayed,) = twins - set(gone)
    assert sem[gone[0]]["reason"] == f"dedup.semantic_duplicate_of:{stayed}"
    assert r["stages"]["dedup.semantic"]["dropped"] == 1
    # explain shows the drop, the stage that made it and the clip kept
    ex = _cli("explain", by_cat["driving"], "--config", str(cfg))
    [drop] = ex["sections"]["fingerprints.dedup"]["dropped_clips"]
    assert (drop["clip_id"], drop["stage"], drop["kept"]) == (gone[0], "dedup.semantic", stayed)

    # [build] balance = {driving = 0.5}: 2 driving clips and 1 handling clip reach the export. By hand:
    # N = 3 gives 1 + min(2, floor(0.5 * 3)) = 2, then 1 + min(2, floor(1)) = 2: one driving clip stays (the
    # earlier: one source, clips by start time; the twin kept is the earlier of the two left), one is dropped.
    b = r["build"]
    assert b["n_clips"] == 2
    assert r["stages"]["build.export"]["reasons"].get("build.balance_cap") == 1
    kept = cat.query("SELECT m.clip_id, m.source_id FROM build_members m WHERE m.build_id = ?", [b["build_id"]])
    assert {x["clip_id"] for x in kept if x["source_id"] == by_cat["driving"]} == {stayed}
    manifest = json.loads((Path(b["out_dir"]) / "build.json").read_text())
    assert manifest["balance"]["target"] == {"driving": 0.5}
    assert manifest["balance"]["before"] == {"driving": 2, "people-handling-objects": 1}
    assert manifest["balance"]["achieved"] == {"driving": 0.5, "people-handling-objects": 0.5}
    sheet = (Path(b["out_dir"]) / "datasheet.html").read_text()
    assert "Balance: target and achieved shares of clips" in sheet
    assert "<td>driving</td><td>50" in sheet

    # target vs planned vs achieved, in the plan's unit (sources): one source of each category
    shares = {c["category"]: (c["target"], c["planned_share"], c["achieved_share"]) for c in r["plan"]["categories"]}
    assert shares == {"driving": (0.5, 0.5, 0.5), "people-handling-objects": (0.5, 0.5, 0.5)}
    chk = _cli("plan", "--check", str(tmp_path / "plan.json"), "--build", "mix", "--config", str(cfg))
    assert chk["build_id"] == b["build_id"] and chk["planned_sources_built"] == 2
    assert [c["achieved_share"] for c in chk["categories"]] == [0.5, 0.5]
    assert "achieved" in chk["chart"]
