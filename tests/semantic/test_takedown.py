"""A takedown removes a source's vectors and kept category scores, and search never returns it again."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

from .conftest import needs_model

MANIFEST = "label,youtube_id,time_start,time_end,split\n" + "\n".join(
    f"{lab},{vid},0,10,val"
    for lab, vid in [
        ("folding clothes", "aaaaaaaaaa1"),
        ("folding clothes", "aaaaaaaaaa2"),
        ("driving car", "bbbbbbbbbb1"),
        ("scuba diving", "cccccccccc1"),
    ]
) + "\n"


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


@needs_model
def test_takedown_removes_vectors_and_search_results(tmp_path):
    m = tmp_path / "k.csv"
    m.write_text(MANIFEST)
    cat = tmp_path / "c.duckdb"
    store = tmp_path / "store"
    r = CliRunner()

    def ok(*args):
        res = r.invoke(app, [*args, "--catalog", str(cat)])
        assert res.exit_code == 0, res.output
        return res

    ok("ingest", str(m), "--dataset", "mini")
    ok("semantic", "index")
    ok("policy", "check", "--purpose", "research")
    before = json.loads(ok("search", "someone folding shirts", "--k", "2", "--json").stdout)
    assert {x["source_id"] for x in before["results"]} == {"youtube:aaaaaaaaaa1", "youtube:aaaaaaaaaa2"}
    ok("takedown", "youtube:aaaaaaaaaa1", "--yes", "--reason", "owner request", "--store", str(store))
    with Catalog(cat).read() as con:
        left = {x[0] for x in con.execute("SELECT source_id FROM embeddings").fetchall()}
        scored = {x[0] for x in con.execute("SELECT source_id FROM category_scores").fetchall()}
    assert "youtube:aaaaaaaaaa1" not in left and len(left) == 3
    assert scored == left  # the kept category scores go with the vectors
    after = json.loads(ok("search", "someone folding shirts", "--k", "4", "--json").stdout)
    ids = [x["source_id"] for x in after["results"]]
    assert "youtube:aaaaaaaaaa1" not in ids and ids[0] == "youtube:aaaaaaaaaa2" and len(ids) == 3
