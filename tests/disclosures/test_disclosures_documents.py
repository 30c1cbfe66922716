"""The documents of a hand-made build, checked against figures worked out from its rows (conftest.py)."""

from __future__ import annotations

import csv
import json

import pytest

from clipfactory.disclosures import REPORT_FILES, write_reports

from .conftest import fill_catalog, write_version


def test_figures_of_the_documents(synthetic):
    cat, s, out, manifest = synthetic
    res = write_reports(cat, s, out, manifest)
    assert sorted(f["name"] for f in res["files"]) == sorted(REPORT_FILES)
    f = res["facts"]
    assert f["totals"]["n_clips"] == 7 and f["totals"]["n_sources"] == 4
    assert f["totals"]["seconds"] == pytest.approx(180.0)
    assert f["totals"]["captioned"] == 2
    ds = {d["dataset"]: d for d in f["datasets"]}
    assert ds["kinetics-400"]["seconds"] == pytest.approx(126.0) and ds["kinetics-400"][
        "share"
    ] == pytest.approx(0.7)
    assert ds["stock"]["seconds"] == pytest.approx(120.0) and ds["stock"]["sources"] == 2
    assert ds["owned"]["share"] == pytest.approx(24 / 180)
    assert (ds["kinetics-400"]["kind"], ds["stock"]["kind"], ds["owned"]["kind"]) == (
        "public dataset",
        "unknown",
        "own media",
    )
    lic = {r["license"]: (r["sources"], r["clips"], round(r["seconds"])) for r in f["licences"]}
    assert lic == {"CC-BY-4.0": (2, 3, 114), "CC0-1.0": (1, 1, 36), "CC-BY-SA-4.0": (1, 3, 30)}
    dom = {d["domain"]: (round(d["seconds"]), d["bytes"]) for d in f["domains"]}
    assert dom == {"alpha.example": (126, 2500), "beta.example": (30, 300), None: (24, 50)}
    assert [d["domain"] for d in f["top_domains"]] == ["alpha.example"]  # ceil(10% of 2 domains) = 1
    assert f["uploader_hhi"] == pytest.approx((126**2 + 30**2) / 156**2)
    assert {r["year"]: round(r["seconds"]) for r in f["years"]} == {"2024": 90, "2025": 66, None: 24}
    assert f["period"] == {
        "first": "2024-05-01T10:00:00Z",
        "last": "2025-02-01T10:00:00Z",
        "undated_sources": 1,
    }
    tdm = {x["signal"]: (x["sources_checked"], x["sources_excluded"]) for x in f["tdm"]}
    assert tdm["robots.txt"] == (2, 1) and tdm["tdmrep"] == (1, 1) and tdm["x-robots-tag"] == (0, 0)
    assert {(r["reason"], r["items"]) for r in f["dropped"]} == {
        ("quality.too_dark", 2),
        ("quality.too_short", 1),
    }
    assert f["crawl"]["sources"] == 3

    # EU summary: every public dataset above 3% is named; crawled domains, opt-outs and size band.
    eu = json.loads((out / "eu_training_summary.json").read_text())
    named = eu["2_list_of_data_sources"]["2_1_public_datasets"]["named_above_3_percent"]
    assert [(d["dataset"], d["share"]) for d in named] == [("Kinetics-400", 0.7)]
    crawl = eu["2_list_of_data_sources"]["2_3_crawled_data"]
    assert [d["domain"] for d in crawl["top_10_percent_domains_by_size"]] == ["alpha.example"]
    assert crawl["crawler"] == "clipfactory" and crawl["purpose"] == "operator must state"
    assert eu["1_general_information"]["modalities"][0]["size_band"] == "less than 10,000 hours"
    assert eu["1_general_information"]["latest_acquisition_date"] == "2025-02-01T10:00:00Z"
    assert eu["1_general_information"]["provider"] == "operator must state"
    md = (out / "eu_training_summary.md").read_text()
    assert "| Kinetics-400 |" in md and "| robots.txt | 2 | 1 |" in md

    # AB 2013: twelve items, copyright status from the licences.
    ab = (out / "ab2013.md").read_text()
    assert ab.count("\n## ") == 12
    assert "3 of 4 works are copyrighted and used under a licence; 1 are in the public domain" in ab
    assert "7 video clips (0.050 hours) from 4 source videos" in ab

    # The H.R. 7913 summary: one row per work.
    with open(out / "copyrighted_works.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    by = {r["source_id"]: r for r in rows}
    assert by["web:s1"]["clips"] == "2" and float(by["web:s1"]["seconds"]) == 90.0
    assert by["web:s1"]["url"] == "https://www.alpha.example/v/1" and by["web:s1"]["license"] == "CC-BY-4.0"
    assert by["web:s3"]["rights_holder"] == "holder of web:s3" and by["web:s3"]["title"] == "title web:s3"

    # Croissant: every source dataset in prov:wasDerivedFrom, ODRL duties from the decisions.
    cr = json.loads((out / "croissant.json").read_text())
    assert sorted(d["name"] for d in cr["prov:wasDerivedFrom"]) == ["Kinetics-400", "Owned media", "stock"]
    duties = {d["odrl:action"]["@id"] for d in cr["usageInfo"]["odrl:permission"]["odrl:duty"]}
    assert duties == {"odrl:attribute", "odrl:shareAlike"}
    assert cr["rai:dataCollectionTimeframe"] == ["2024-05-01T10:00:00Z", "2025-02-01T10:00:00Z"]


def test_operator_statements_fill_the_documents(synthetic):
    cat, s, out, manifest = synthetic
    write_reports(
        cat,
        s,
        out,
        manifest,
        statements={"provider": "Example Labs", "model_purpose": "text-to-video research",
                    "personal_information": "faces are blurred"},
    )
    eu = json.loads((out / "eu_training_summary.json").read_text())
    assert eu["1_general_information"]["provider"] == "Example Labs"
    limits = json.loads((out / "croissant.json").read_text())["rai:dataLimitations"]
    assert "Personal information: faces are blurred." in limits and "operator must state" not in limits
    assert (
        "## 2. How the datasets further the intended purpose of the system\n\ntext-to-video research"
        in (out / "ab2013.md").read_text()
    )
    assert json.loads((out / "croissant.json").read_text())["creator"]["name"] == "Example Labs"


def test_empty_build_custom_purpose_and_undated_sources(tmp_path):
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings

    cat = Catalog(tmp_path / "catalog.duckdb", create=True)
    undated = {"web:u1": ("https://gamma.example/a", None, "CC-BY-4.0", None, ["stock"], [(5_000, 10)])}
    fill_catalog(cat, undated, purpose="my-own-purpose")
    s = load_settings(None, overrides={"catalog": str(tmp_path / "catalog.duckdb")})
    out, manifest = write_version(tmp_path, "synthetic-v1", 1, {}, purpose="my-own-purpose")
    write_reports(cat, s, out, manifest)
    eu = json.loads((out / "eu_training_summary.json").read_text())
    assert eu["1_general_information"]["modalities"][0]["clips"] == 0
    assert eu["1_general_information"]["latest_acquisition_date"] == "unknown"
    assert "the build holds no works" in (out / "ab2013.md").read_text()
    assert (
        out / "copyrighted_works.csv"
    ).read_text().strip() == "source_id,title,rights_holder,uploader,url,license,clips,seconds"
    assert "Datasheet: synthetic-v1" in (out / "datasheet.html").read_text()

    out2, manifest2 = write_version(tmp_path / "b", "synthetic-v2", 2, undated, purpose="my-own-purpose")
    write_reports(cat, s, out2, manifest2)
    eu = json.loads((out2 / "eu_training_summary.json").read_text())
    g = eu["1_general_information"]
    assert g["latest_acquisition_date"] == "unknown" and g["languages"] == ["unknown"]
    cr = json.loads((out2 / "croissant.json").read_text())
    assert cr["rai:dataCollectionTimeframe"] == ["unknown", "unknown"]
    assert "Training under the purpose profile my-own-purpose: unknown" == cr["rai:dataUseCases"]


@pytest.mark.parametrize("which", ["full", "empty"])
def test_croissant_passes_mlcroissant(synthetic, tmp_path, which):
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is in the [dev] extra")
    cat, s, out, manifest = synthetic
    if which == "empty":
        out, manifest = write_version(tmp_path / "e", "synthetic-v9", 9, {})
    write_reports(cat, s, out, manifest)
    ds = mlc.Dataset(jsonld=str(out / "croissant.json"))  # raises on any validation error
    assert not ds.metadata.ctx.issues.errors
    records = list(ds.records("clips"))
    assert len(records) == manifest["n_clips"]
    if records:
        assert sorted(r["clips/clip_id"].decode() for r in records)[0] == "s1c0"


def test_bad_croissant_fails_mlcroissant(synthetic):
    """The validator used above does reject a broken document (a field reading a file that is not there)."""
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is in the [dev] extra")
    cat, s, out, manifest = synthetic
    write_reports(cat, s, out, manifest)
    doc = json.loads((out / "croissant.json").read_text())
    doc["recordSet"][0]["field"][0]["source"] = {
        "fileObject": {"@id": "missing.parquet"},
        "extract": {"column": "x"},
    }
    (out / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="missing.parquet"):
        mlc.Dataset(jsonld=str(out / "bad.json"))


def test_categories_are_those_the_semantic_layer_gives(synthetic):
    """Each clip counts under its source's category from `clipfactory categories` (here: manifest labels the
    taxonomy maps, "Drone" and "Video game"); sources with nothing to classify count as unknown."""
    cat, s, out, manifest = synthetic
    with cat.write() as con:
        con.execute("UPDATE memberships SET label = 'Drone' WHERE source_id = 'web:s1' AND dataset = 'stock'")
        con.execute("UPDATE memberships SET label = 'Video game' WHERE source_id = 'web:s3'")
    f = write_reports(cat, s, out, manifest)["facts"]
    got = {c["category"]: round(c["seconds"]) for c in f["categories"]}
    # s1: two clips, 60 + 30 s; s3: three clips of 10 s; s2 (36 s) and s4 (24 s) have no vectors or labels.
    assert got == {"drone-aerial": 90, "gameplay": 30, None: 60}


def test_languages_from_the_manifest_else_identified_from_captions(synthetic):
    """A stated language decides; otherwise the captions' language when it is clear; else unknown."""
    pytest.importorskip("py3langid")
    cat, s, out, manifest = synthetic
    with cat.write() as con:
        for sid, caption, extra in (
            ("web:s1", "a man is slowly playing an old guitar on a busy street", None),
            ("web:s2", "une femme prépare le dîner dans une petite cuisine", None),
            ("web:s3", "irgendein text", '{"language": "DE"}'),
            ("sha256:s4", "ok", None),  # too short to tell
        ):
            con.execute(
                "INSERT INTO clip_spans (dataset, source_id, clip_id, start_ms, end_ms, caption, extra) "
                "VALUES ('stock', ?, ?, 0, 1000, ?, ?)",
                [sid, sid + "-span", caption, extra],
            )
    f = write_reports(cat, s, out, manifest)["facts"]
    got = {r["language"]: round(r["seconds"]) for r in f["languages"]}
    # s1: 60 + 30 s in English; s2: 36 s in French; s3: three clips of 10 s, stated German; s4: 24 s unknown
    assert got == {"en": 90, "fr": 36, "de": 30, None: 24}


def test_sources_the_gate_refused_in_the_builds_run_count_as_policy_refusals(synthetic):
    cat, s, out, manifest = synthetic
    with cat.write() as con:
        con.execute(
            "INSERT INTO stage_outcomes (run_id, stage, item_id, status, reason, recorded_at) VALUES "
            "('run-1', 'policy.gate', 'web:s9', 'dropped', 'policy.license_noncommercial', now()), "
            "('run-2', 'policy.gate', 'web:s10', 'dropped', 'policy.license_noncommercial', now())"
        )
    write_reports(cat, s, out, manifest)
    eu = json.loads((out / "eu_training_summary.json").read_text())
    # the build's run is run-1: its one refusal counts, run-2's does not
    assert eu["3_data_processing"]["3_1_tdm_opt_out"]["policy_refused_sources"] == 1
    assert "Sources the licence policy refused for this build: 1." in (out / "eu_training_summary.md").read_text()
