"""The documented permission route through the CLI (docs/semantic.md, Plans; docs/policy.md, section 5):
`policy check --permissions FILE`, then `plan --permissions FILE`, changes the plan; the same file in
clipfactory.toml does too; a plan given other files than the decisions were made with says which."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

TAX = ('[categories.driving]\nprompts = ["a car on a road"]\n[categories.people-handling-objects]\n'
       'prompts = ["hands folding clothes"]\n[labels]\n"driving car" = "driving"\n'
       '"knitting" = "people-handling-objects"\n')


def _setup(tmp_path):
    rows = ["label,youtube_id,time_start,time_end,split,is_cc"]
    rows += [f"driving car,drive{n:06d},0,10,val,0" for n in range(4)]
    rows += [f"knitting,knits{n:06d},0,10,val,0" for n in range(6)]
    (tmp_path / "kinetics-400_val.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "letter.pdf").write_bytes(b"signed permission letter")
    (tmp_path / "permissions.toml").write_text(
        '[[permission]]\nplatform = "youtube"\nscope = "all"\ngranted_by = "YouTube"\n'
        'granted_at = 2026-01-15\ndocument = "letter.pdf"\n')
    (tmp_path / "t.toml").write_text(TAX)
    return str(tmp_path / "c.duckdb")


def _run(r, *args):
    return r.invoke(app, list(args))


def test_the_documented_permission_route_changes_the_plan(tmp_path, monkeypatch):
    cat = _setup(tmp_path)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    plan = ["plan", "--target", "people-handling-objects=0.6,driving=0.4", "--budget-sources", "5",
            "--purpose", "research", "--json", "--catalog", cat]
    assert _run(r, "ingest", "kinetics-400_val.csv", "--catalog", cat).exit_code == 0
    assert _run(r, "policy", "check", "--purpose", "research", "--catalog", cat).exit_code == 0
    before = _run(r, *plan)
    # YouTube without a recorded permission: nothing acquirable, both categories impossible, so nothing to
    # plan: an error naming them and the permission route
    b = " ".join(before.output.split())
    assert before.exit_code == 1, before.output
    assert "driving (4 sources, none that 'research' may acquire and use)" in b
    assert "people-handling-objects (6 sources, none that 'research' may acquire and use)" in b
    assert "--permissions" in b
    # the route of the docs: record the permission, then plan with the same file
    res = _run(r, "policy", "check", "--purpose", "research", "--permissions", "permissions.toml", "--catalog", cat)
    assert res.exit_code == 0, res.output
    after = _run(r, *plan, "--permissions", "permissions.toml")
    assert after.exit_code == 0, after.output
    a = json.loads(after.stdout)
    assert a["impossible"] == [] and a["planned"] == 5
    assert {c["category"]: c["planned"] for c in a["categories"]} == {"people-handling-objects": 3, "driving": 2}
    # a plan without the file the decisions were made with is refused, naming the option to give
    stale = _run(r, *plan)
    assert stale.exit_code != 0 and "--permissions" in stale.output
    # the same file in clipfactory.toml: no flag needed
    (tmp_path / "clipfactory.toml").write_text('permissions_file = "permissions.toml"\n')
    conf = _run(r, *plan)
    assert conf.exit_code == 0, conf.output
    assert json.loads(conf.stdout)["planned"] == 5


def test_run_plan_takes_the_permissions_file_as_plan_does(tmp_path, monkeypatch):
    """`run --plan PLAN --permissions FILE` lets the gate pass what the permission covers; without the
    file the run is refused before the gate decides the plan's sources again."""
    cat = _setup(tmp_path)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    assert _run(r, "ingest", "kinetics-400_val.csv", "--catalog", cat).exit_code == 0
    assert _run(r, "policy", "check", "--purpose", "research", "--permissions", "permissions.toml",
                "--catalog", cat).exit_code == 0
    made = _run(r, "plan", "--target", "people-handling-objects=0.6,driving=0.4", "--budget-sources", "5",
                "--purpose", "research", "--catalog", cat, "--permissions", "permissions.toml", "--out", "plan.json")
    assert made.exit_code == 0, made.output

    def run(*extra):
        return _run(r, "run", "--plan", "plan.json", "--catalog", cat, "--store", "store", "--json", *extra)

    without = run()
    assert without.exit_code == 1 and "--permissions" in without.output, without.output
    with_file = run("--permissions", "permissions.toml")
    assert with_file.exit_code == 0, with_file.output
    gate = json.loads(with_file.stdout)["stages"]["policy.gate"]
    assert (gate["kept"], gate["dropped"]) == (5, 0)


def test_run_plan_builds_only_the_plan_and_refuses_other_permissions(tmp_path, monkeypatch):
    """A plan's run leaves out the config's owned inputs, and a run without the permissions file the plan's
    decisions were made with stops before any work, naming the option, with the stored decisions kept."""
    cat = _setup(tmp_path)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owned").mkdir()
    (tmp_path / "owned" / "home.mp4").write_bytes(b"owned media the plan does not name")
    (tmp_path / "clipfactory.toml").write_text(
        f'catalog = "{cat}"\nstore = "store"\ninputs = ["owned"]\nlicense = "CC-BY-4.0"\nrights_holder = "me"\n'
    )
    r = CliRunner()
    assert _run(r, "ingest", "kinetics-400_val.csv", "--catalog", cat).exit_code == 0
    assert _run(r, "policy", "check", "--purpose", "research", "--permissions", "permissions.toml",
                "--catalog", cat).exit_code == 0
    made = _run(r, "plan", "--target", "driving=1", "--budget-sources", "3", "--purpose", "research",
                "--catalog", cat, "--permissions", "permissions.toml", "--out", "plan.json")
    assert made.exit_code == 0, made.output

    def allowed() -> int:
        return Catalog(cat).scalar(
            "SELECT count(*) FROM policy_decisions WHERE purpose = 'research' AND decision = 'allow'")

    assert allowed() == 10
    refused = _run(r, "run", "--plan", "plan.json", "--config", "clipfactory.toml")
    assert refused.exit_code == 1 and "--permissions" in refused.output, refused.output
    assert allowed() == 10  # the decisions of the permission are not decided again without it
    ran = _run(r, "run", "--plan", "plan.json", "--config", "clipfactory.toml", "--permissions",
               "permissions.toml", "--json")
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    assert summary["inputs"] == 0  # the owned file of the config's inputs is not part of the plan's run
    assert summary["stages"]["policy.gate"]["received"] == 3


def test_search_ranks_before_any_policy_check_and_names_an_unknown_purpose(tmp_path, monkeypatch):
    cat = _setup(tmp_path)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    assert _run(r, "ingest", "kinetics-400_val.csv", "--catalog", cat).exit_code == 0
    assert _run(r, "semantic", "index", "--catalog", cat).exit_code == 0
    res = _run(r, "search", "someone knitting a scarf", "--k", "3", "--catalog", cat, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["results"]) == 3 and all(x["decision"] == "not evaluated" for x in out["results"])
    assert "never evaluated" in out["decisions_note"] and "policy check --purpose research" in out["decisions_note"]
    assert {x["item_id"] for x in out["results"]} <= {f"youtube:knits{n:06d}" for n in range(6)}
    for cmd in (["search", "knitting"], ["plan", "--target", "driving=1", "--budget-sources", "1"]):
        bad = _run(r, *cmd, "--purpose", "foo", "--catalog", cat)
        assert bad.exit_code == 1 and "unknown purpose profile 'foo'" in bad.output, (cmd, bad.output)
        assert "commercial" in bad.output and "research" in bad.output


def test_search_notes_results_added_after_the_policy_check(tmp_path, monkeypatch):
    cat = _setup(tmp_path)
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", str(tmp_path / "t.toml"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    assert _run(r, "ingest", "kinetics-400_val.csv", "--catalog", cat).exit_code == 0
    assert _run(r, "policy", "check", "--purpose", "research", "--catalog", cat).exit_code == 0
    # two more knitting videos, ingested after the check: no decision of theirs is stored
    (tmp_path / "more.csv").write_text("label,youtube_id,time_start,time_end,split,is_cc\n"
                                       "knitting,later000001,0,10,val,0\nknitting,later000002,0,10,val,0\n")
    assert _run(r, "ingest", "more.csv", "--dataset", "kinetics-400", "--catalog", cat).exit_code == 0
    assert _run(r, "semantic", "index", "--catalog", cat).exit_code == 0
    res = _run(r, "search", "someone knitting a scarf", "--k", "10", "--catalog", cat, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    late = {x["item_id"]: x["decision"] for x in out["results"] if x["item_id"].startswith("youtube:later")}
    assert late == {"youtube:later000001": "undecided", "youtube:later000002": "undecided"}
    note = out["decisions_note"]
    assert note.startswith("2 of the results have no 'research' decision") and "policy check --purpose research" in note
    table = _run(r, "search", "someone knitting a scarf", "--k", "10", "--catalog", cat)
    assert table.exit_code == 0 and "2 of the results have no 'research' decision" in " ".join(table.output.split())
    # checked again, every result has its decision and the note is gone
    assert _run(r, "policy", "check", "--purpose", "research", "--catalog", cat).exit_code == 0
    again = json.loads(_run(r, "search", "someone knitting a scarf", "--k", "10", "--catalog", cat, "--json").stdout)
    assert again["decisions_note"] is None and "undecided" not in {x["decision"] for x in again["results"]}
    # a visual search without visual vectors names the model setting first
    vis = _run(r, "search", "knitting", "--modality", "visual", "--catalog", cat)
    assert vis.exit_code == 1 and "semantic.visual.model" in vis.output, vis.output
