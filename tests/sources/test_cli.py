"""The ingest, datasets and sources commands through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from media_synth import flat_video
from typer.testing import CliRunner

from clipfactory.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def cat_path(tmp_path):
    return tmp_path / "catalog.duckdb"


def test_ingest_json_summary(cat_path, manifests):
    r = invoke(
        "ingest",
        manifests / "kinetics400_sample.csv",
        manifests / "acav100m_output.csv",
        "--catalog",
        cat_path,
        "--json",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    a, b = data["manifests"]
    assert (a["dataset"], a["rows_total"], a["rows_ok"], a["rows_bad"]) == ("kinetics-400", 10, 4, 6)
    assert (a["new_sources"], a["new_memberships"]) == (3, 3)
    assert a["errors"][0]["where"].endswith("kinetics400_sample.csv:4")
    assert a["errors"][0]["reason"] == "bad YouTube id tooShortId: 10 characters, not 11"
    assert (b["dataset"], b["new_sources"], b["new_memberships"]) == ("acav100m", 1, 2)

    again = json.loads(
        invoke("ingest", manifests / "acav100m_output.csv", "--catalog", cat_path, "--json").stdout
    )
    assert again["manifests"][0]["already_ingested"] is True


def test_ingest_human_output_lists_first_errors(cat_path, manifests):
    r = invoke("ingest", manifests / "kinetics400_sample.csv", "--catalog", cat_path)
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())
    assert "10 rows, 4 ok, 6 bad; 3 new sources, 3 new memberships" in out
    assert "kinetics400_sample.csv:4: bad YouTube id tooShortId" in out
    assert "kinetics400_sample.csv:8: invalid UTF-8 bytes" in out


def test_wrong_format_is_one_red_line(cat_path, manifests):
    r = invoke(
        "ingest", manifests / "kinetics400_sample.csv", "--format", "webvid-10m", "--catalog", cat_path
    )
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert "needs column(s) videoid, contentUrl" in " ".join(r.output.split())


def test_generic_map_and_owned_flags(cat_path, manifests, tmp_path):
    r = invoke(
        "ingest",
        manifests / "generic_clips.csv",
        "--map",
        "id=vid,url=link,start=s,end=e,caption=text,time-unit=hms",
        "--dataset",
        "my-clips",
        "--catalog",
        cat_path,
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["manifests"][0]["rows_ok"] == 3
    media = tmp_path / "m"
    media.mkdir()
    flat_video(media / "x.mp4", 0.12, size=(32, 32))
    r = invoke(
        "ingest", media, "--license", "CC-BY-4.0", "--rights-holder", "Me", "--catalog", cat_path, "--json"
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)["manifests"][0]
    assert (s["dataset"], s["format"], s["new_sources"]) == ("owned", "owned", 1)


def test_datasets_sources_missing_commands(cat_path, manifests, tmp_path):
    invoke(
        "ingest",
        manifests / "kinetics400_sample.csv",
        manifests / "acav100m_output.csv",
        "--catalog",
        cat_path,
    )

    r = invoke("datasets", "list", "--catalog", cat_path, "--json")
    assert r.exit_code == 0, r.output
    ds = {d["dataset"]: d for d in json.loads(r.stdout)["datasets"]}
    assert ds["kinetics-400"]["sources"] == 3 and ds["kinetics-400"]["rows_bad"] == 6
    assert ds["acav100m"]["registry_key"] == "acav100m"

    r = invoke("datasets", "overlap", "--catalog", cat_path, "--json")
    m = json.loads(r.stdout)
    assert m["shared"]["acav100m"]["kinetics-400"] == 1
    assert m["unique"] == {"acav100m": 1, "kinetics-400": 2}
    assert m["pairs"] == [{"a": "acav100m", "b": "kinetics-400", "shared": 1}]
    assert "kinetics-400" in invoke("datasets", "overlap", "--catalog", cat_path).stdout

    r = invoke("sources", "list", "--dataset", "acav100m", "--catalog", cat_path, "--json")
    d = json.loads(r.stdout)
    assert d["total"] == 2
    assert [s["source_id"] for s in d["sources"]] == ["youtube:0wR5jVB-WPk", "youtube:NgI3xyMX1Ss"]
    assert d["sources"][0]["datasets"] == ["acav100m", "kinetics-400"]

    r = invoke("datasets", "errors", "--dataset", "acav100m", "--catalog", cat_path, "--json")
    assert [(e["line"], e["reason"][:14]) for e in json.loads(r.stdout)["errors"]] == [
        (3, "bad YouTube id"),
        (4, "segment is not"),
    ]

    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "NgI3xyMX1Ss.mp4").write_bytes(b"x")
    out = tmp_path / "missing.parquet"
    r = invoke("sources", "missing", "--store", folder, "--catalog", cat_path, "--json", "--output", out)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["sources"], d["present"], d["missing"]) == (4, 1, 3)
    assert out.exists()

    r = invoke("sources", "list", "--dataset", "nope", "--catalog", cat_path)
    assert r.exit_code == 1 and "no such dataset" in r.output
